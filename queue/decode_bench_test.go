package queue

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/chime-dev/chime/message"
)

// benchTask is a shared task as a fire of many small cities queues it: 64
// groups of one prayer reminder, each its own city.
func benchTask() Task {
	msg := message.Message{ReminderID: 3, Reminder: "fajr", App: 9, Title: "Fajr", Body: "Fajr is at {{time}} in {{location}}",
		Tags: []string{"prayer"}, Lang: "en", Translations: map[string]message.Text{"ar": {Title: "الفجر", Body: "حان الآن"}},
		Policy: &message.Policy{Category: "prayer", CapMax: 3, CapWindow: 24 * time.Hour},
		FireAt: time.Date(2026, 3, 8, 4, 30, 0, 0, time.UTC)}
	var parts []Payload
	for i := range DefaultTaskParts {
		m := msg
		m.Occurrence, m.Group, m.Location, m.Zone = int64(1000+i), 0, fmt.Sprintf("city-%d", i), "Asia/Jakarta"
		m.ExpiresAt = m.FireAt.Add(15 * time.Minute)
		parts = append(parts, Payload{Message: m, LocationID: int64(i + 1), Layout: 1, Attempt: 1})
	}
	return Task{Parts: parts}
}

// BenchmarkDecode compares a worker's decode of one shared task in the
// form before shared messages (legacy) and in TaskType's form (shared).
// Its bytes/op figure is the task's size on the queue.
func BenchmarkDecode(b *testing.B) {
	task := benchTask()
	legacy, err := json.Marshal(task)
	if err != nil {
		b.Fatal(err)
	}
	cur, err := Encode(task)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name, typ string
		payload   []byte
	}{{"legacy", LegacyTaskType, legacy}, {"shared", TaskType, cur}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.payload)))
			for b.Loop() {
				if _, err := Decode(c.typ, c.payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEncode is the coordinator's side: packing and encoding 5,000
// groups of one instant.
func BenchmarkEncode(b *testing.B) {
	one := benchTask().Parts[0]
	ps := make([]Payload, 5000)
	sizes := make([]int, len(ps))
	for i := range ps {
		ps[i] = one
		ps[i].Occurrence, ps[i].LocationID = int64(i+1), int64(i+1)
		sizes[i] = 100
	}
	for b.Loop() {
		ts, err := Pack(ps, sizes, 2000, DefaultTaskParts)
		if err != nil {
			b.Fatal(err)
		}
		for _, t := range ts {
			if _, err := Encode(t); err != nil {
				b.Fatal(err)
			}
		}
	}
}
