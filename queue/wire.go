package queue

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/chime-dev/chime/message"
)

// The task's form on the queue (TaskType). A task's parts are the groups
// of one instant, mostly of one reminder, so their messages differ only
// in what is the occurrence's own: its ID, group, location and zone, and
// its instant and validity window. The task carries the rest once (m),
// and each part its own fields (p); a part whose message differs from the
// first part's in anything else carries its whole message (w). Before
// this form (LegacyTaskType) every part carried its whole message, which a
// worker decoded again for each of a task's 64 groups.
type wireTask struct {
	Base  *message.Message `json:"m"`
	Parts []wirePart       `json:"p"`
}

type wirePart struct {
	Occurrence int64     `json:"o"`
	Group      int       `json:"g"`
	Location   string    `json:"ln,omitempty"`
	Zone       string    `json:"z,omitempty"`
	FireAt     time.Time `json:"f"`
	ExpiresAt  time.Time `json:"e,omitzero"`
	LocationID int64     `json:"l"`
	Layout     int       `json:"n,omitempty"`
	Attempt    int       `json:"a"`
	Users      []string  `json:"u,omitempty"`
	// Own is the part's whole message when it is not the task's apart
	// from the occurrence's own fields.
	Own *message.Message `json:"w,omitempty"`
}

// shared returns m without the fields that are its occurrence's own.
func shared(m message.Message) message.Message {
	m.Occurrence, m.Group, m.Location, m.Zone = 0, 0, "", ""
	m.FireAt, m.ExpiresAt = time.Time{}, time.Time{}
	return m
}

// sharesWith reports whether p's message is base (a shared message) apart
// from the occurrence's own fields.
func sharesWith(base message.Message, p Payload) bool {
	return reflect.DeepEqual(shared(p.Message), base)
}

// ownPart returns p's own fields: p as the task's first part, whose
// message is the task's.
func ownPart(p Payload) wirePart {
	return wirePart{Occurrence: p.Occurrence, Group: p.Group, Location: p.Location, Zone: p.Zone,
		FireAt: p.FireAt, ExpiresAt: p.ExpiresAt, LocationID: p.LocationID, Layout: p.Layout,
		Attempt: p.Attempt, Users: p.Users}
}

// part returns p's own fields, and its whole message unless it shares
// base.
func part(base message.Message, p Payload) wirePart {
	w := ownPart(p)
	if !sharesWith(base, p) {
		own := p.Message
		w.Own = &own
	}
	return w
}

// writer builds a task's form on the queue as its parts join it: the form
// Encode returns, which Pack builds while it packs. It writes what
// wireTask reads: {"m": the first part's shared message, "p": [parts]}.
type writer struct {
	base message.Message
	buf  []byte
}

// start begins a task whose first part is p: p's message is the task's.
func (w *writer) start(p Payload) error {
	w.base = shared(p.Message)
	mb, err := json.Marshal(w.base)
	if err != nil {
		return fmt.Errorf("encode group task: %w", err)
	}
	b, err := json.Marshal(ownPart(p))
	if err != nil {
		return fmt.Errorf("encode group task: %w", err)
	}
	w.buf = append(append(append([]byte(`{"m":`), mb...), `,"p":[`...), b...)
	return nil
}

// encode returns p's part of the task started, for add.
func (w *writer) encode(p Payload) ([]byte, error) {
	b, err := json.Marshal(part(w.base, p))
	if err != nil {
		return nil, fmt.Errorf("encode group task: %w", err)
	}
	return b, nil
}

// sizeWith is the size of the task's form with the encoded part b added.
func (w *writer) sizeWith(b []byte) int { return len(w.buf) + len(",") + len(b) + len("]}") }

// add adds the encoded part b.
func (w *writer) add(b []byte) { w.buf = append(append(w.buf, ','), b...) }

// bytes returns the task's form; the writer is done with it.
func (w *writer) bytes() []byte { return append(w.buf, "]}"...) }

// Encode returns t in its form on the queue, the payload of a TaskType
// task: the form Pack built, or built now.
func Encode(t Task) ([]byte, error) {
	if t.encoded != nil {
		return t.encoded, nil
	}
	if len(t.Parts) == 0 {
		return nil, errors.New("encode group task: no groups")
	}
	var w writer
	if err := w.start(t.Parts[0]); err != nil {
		return nil, err
	}
	for _, p := range t.Parts[1:] {
		b, err := w.encode(p)
		if err != nil {
			return nil, err
		}
		w.add(b)
	}
	return w.bytes(), nil
}

// Decode reads a task of type typ: TaskType, or LegacyTaskType as queued
// before parts shared their message. Parts that shared a message share its
// maps, slices and pointers (translations, tags, data, the policy and its
// quiet hours): they are read, never written.
func Decode(typ string, b []byte) (Task, error) {
	var t Task
	switch typ {
	case TaskType:
		var w wireTask
		if err := json.Unmarshal(b, &w); err != nil {
			return t, fmt.Errorf("decode group task: %w", err)
		}
		if w.Base == nil || len(w.Parts) == 0 {
			return t, errors.New("decode group task: no message or no groups")
		}
		t.Parts = make([]Payload, len(w.Parts))
		for i, wp := range w.Parts {
			m := *w.Base
			if wp.Own != nil {
				m = *wp.Own
			}
			m.Occurrence, m.Group, m.Location, m.Zone = wp.Occurrence, wp.Group, wp.Location, wp.Zone
			m.FireAt, m.ExpiresAt = wp.FireAt, wp.ExpiresAt
			t.Parts[i] = Payload{Message: m, LocationID: wp.LocationID, Layout: wp.Layout, Attempt: wp.Attempt, Users: wp.Users}
		}
	case LegacyTaskType:
		var err error
		if t, err = decodeLegacy(b); err != nil {
			return t, err
		}
	default:
		return t, fmt.Errorf("decode group task: unknown task type %q", typ)
	}
	for _, p := range t.Parts {
		if p.Occurrence == 0 {
			return t, errors.New("decode group task: no occurrence")
		}
	}
	return t, nil
}

// decodeLegacy reads a LegacyTaskType task. A task queued before tasks
// could be shared is one Payload, and reads as a task of one part.
func decodeLegacy(b []byte) (Task, error) {
	var t Task
	if err := json.Unmarshal(b, &t); err != nil {
		return t, fmt.Errorf("decode group task: %w", err)
	}
	if len(t.Parts) == 0 {
		var p Payload
		if err := json.Unmarshal(b, &p); err != nil {
			return t, fmt.Errorf("decode group task: %w", err)
		}
		t.Parts = []Payload{p}
	}
	return t, nil
}
