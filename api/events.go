package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/chime-dev/chime/store"
)

// MaxEventData bounds the data of one event, in bytes of compact JSON (as
// it is stored): the most its column holds.
const MaxEventData = store.MaxText

// maxEventBody bounds the body of POST /v1/events: the data and room for
// the other fields.
const maxEventBody = MaxEventData + 4096

// MaxEventAhead bounds how far ahead an event may be scheduled.
const MaxEventAhead = 366 * 24 * time.Hour

// Event is the JSON form of an event posted on a topic.
type Event struct {
	ID        int64           `json:"id"`
	Topic     string          `json:"topic"`
	Data      json.RawMessage `json:"data"`
	FireAt    time.Time       `json:"fire_at"`
	Canceled  bool            `json:"canceled"`
	CreatedAt time.Time       `json:"created_at"`
	// Occurrences are the event's firings, one per location of the topic,
	// once the planner has made them.
	Occurrences []Occurrence `json:"occurrences"`
}

type eventInput struct {
	Topic string          `json:"topic"`
	Data  json.RawMessage `json:"data"`
	At    *time.Time      `json:"at"`
}

// MaxSchema bounds a topic's schema, in bytes of compact JSON (as it is
// stored): the most its column holds.
const MaxSchema = store.MaxText

// compileTopicSchema checks that raw is a JSON Schema for an object and
// returns it as stored. Unknown fields are refused unless the schema says
// otherwise: a schema without "additionalProperties" gets false.
func compileTopicSchema(raw json.RawMessage) (string, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return "", errors.New(`is required for a topic: a JSON Schema of the event data, such as {"type":"object","properties":{...},"required":[...]}`)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return "", errors.New("must be a JSON object (a JSON Schema)")
	}
	if doc["type"] != "object" {
		return "", errors.New(`must describe an object: "type": "object"`)
	}
	if _, ok := doc["additionalProperties"]; !ok {
		doc["additionalProperties"] = false
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return "", err
	}
	if len(b) > MaxSchema {
		return "", fmt.Errorf("must be at most %d bytes as stored (compact JSON), not %d", MaxSchema, len(b))
	}
	if _, err := topicSchema(string(b)); err != nil {
		return "", err
	}
	return string(b), nil
}

// schemas caches compiled topic schemas by their text.
var schemas sync.Map // string -> *jsonschema.Schema

func topicSchema(text string) (*jsonschema.Schema, error) {
	if s, ok := schemas.Load(text); ok {
		return s.(*jsonschema.Schema), nil
	}
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(text))
	if err != nil {
		return nil, fmt.Errorf("is not valid JSON: %w", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("topic.json", doc); err != nil {
		return nil, fmt.Errorf("is not a valid JSON Schema: %w", err)
	}
	sch, err := c.Compile("topic.json")
	if err != nil {
		return nil, fmt.Errorf("is not a valid JSON Schema: %s", firstLine(err.Error()))
	}
	schemas.Store(text, sch)
	return sch, nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// dataErrors lists where data breaks the schema, one entry per failing
// field.
func dataErrors(sch *jsonschema.Schema, data json.RawMessage) []FieldError {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return []FieldError{{Field: "data", Message: "is not valid JSON"}}
	}
	err = sch.Validate(inst)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return []FieldError{{Field: "data", Message: err.Error()}}
	}
	var out []FieldError
	var walk func(u *jsonschema.OutputUnit)
	walk = func(u *jsonschema.OutputUnit) {
		if u.Error != nil {
			field := "data" + strings.ReplaceAll(u.InstanceLocation, "/", ".")
			out = append(out, FieldError{Field: field, Message: u.Error.String()})
		}
		for i := range u.Errors {
			walk(&u.Errors[i])
		}
	}
	walk(ve.BasicOutput())
	sort.SliceStable(out, func(i, j int) bool { return out[i].Field < out[j].Field })
	if len(out) > 20 {
		out = out[:20]
	}
	if len(out) == 0 {
		out = []FieldError{{Field: "data", Message: firstLine(err.Error())}}
	}
	return out
}

// postEvent stores an event on a topic. An Idempotency-Key header makes a
// retried post return the first one's event instead of storing a second; the
// same key with another request is refused.
func (a *API) postEvent(w http.ResponseWriter, r *http.Request, app int64) error {
	idem := r.Header.Get("Idempotency-Key")
	if len(idem) > 200 {
		return problem(http.StatusBadRequest, "the Idempotency-Key header must be at most 200 characters")
	}
	// The key is stored in a utf8mb4 column, which refuses other bytes.
	if !utf8.ValidString(idem) || strings.IndexFunc(idem, unicode.IsControl) >= 0 {
		return problem(http.StatusBadRequest, "the Idempotency-Key header must be UTF-8 text without control characters")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxEventBody))
	if err != nil {
		return problem(http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body is over the limit of %d bytes", maxEventBody))
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var in eventInput
	if p := decode(w, r, int64(len(body))+1, &in); p != nil {
		return p
	}
	if in.Topic == "" {
		return problem(http.StatusUnprocessableEntity, "topic (the key of a topic reminder) is required",
			FieldError{Field: "topic", Message: "is required"})
	}
	rem, err := a.findReminder(r, app, in.Topic)
	if err != nil {
		return err
	}
	if rem.Kind != store.KindTopic {
		return problem(http.StatusUnprocessableEntity, fmt.Sprintf("reminder %q is a %s reminder, not a topic", rem.Key, rem.Kind),
			FieldError{Field: "topic", Message: "must be the key of a topic reminder"})
	}
	if len(bytes.TrimSpace(in.Data)) == 0 || bytes.Equal(bytes.TrimSpace(in.Data), []byte("null")) {
		in.Data = json.RawMessage("{}")
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, in.Data); err != nil {
		return problem(http.StatusBadRequest, "data is not valid JSON")
	}
	if compact.Len() > MaxEventData {
		return problem(http.StatusUnprocessableEntity, "data is too large; nothing was stored",
			FieldError{Field: "data", Message: fmt.Sprintf("must be at most %d bytes as compact JSON, not %d", MaxEventData, compact.Len())})
	}
	sch, err := topicSchema(rem.Schema)
	if err != nil {
		return fmt.Errorf("topic %q schema: %w", rem.Key, err)
	}
	if errs := dataErrors(sch, in.Data); len(errs) > 0 {
		return problem(http.StatusUnprocessableEntity, fmt.Sprintf("the data does not match the schema of topic %q; nothing was stored", rem.Key), errs...)
	}
	// The hash is over the data in a canonical form (keys sorted), so a
	// retry that orders the fields differently is the same request.
	canon, err := canonicalJSON(in.Data)
	if err != nil {
		return problem(http.StatusBadRequest, "data is not valid JSON")
	}
	now := a.cfg.Now().UTC()
	fireAt := now
	// A retry can come after the event's instant has passed; the window is
	// checked only for a new event.
	var atProblem *Problem
	if in.At != nil {
		fireAt = in.At.UTC()
		switch {
		case fireAt.Before(now.Add(-rem.Grace())):
			atProblem = problem(http.StatusUnprocessableEntity, "at is further in the past than the topic's grace window",
				FieldError{Field: "at", Message: "must be now, in the future, or within the grace window " + rem.Grace().String()})
		case fireAt.After(now.Add(MaxEventAhead)):
			atProblem = problem(http.StatusUnprocessableEntity, "at is too far ahead",
				FieldError{Field: "at", Message: "must be within 366 days"})
		}
	}
	if atProblem != nil && idem == "" {
		return atProblem
	}
	sum := sha256.Sum256(append([]byte(in.Topic+"\n"+fireAtKey(in.At)+"\n"), canon...))
	hash := hex.EncodeToString(sum[:])

	ev := store.Event{AppID: app, ReminderID: rem.ID, RequestHash: hash, Data: compact.String(), FireAt: fireAt, CreatedAt: now}
	if idem != "" {
		ev.IdempotencyKey = &idem
	}
	var refuse error
	if atProblem != nil {
		refuse = atProblem
	}
	ev, replayed, err := store.AddEvent(r.Context(), a.db, ev, refuse)
	if errors.Is(err, store.ErrIdempotencyConflict) {
		return problem(http.StatusUnprocessableEntity, "this Idempotency-Key was used for a different request; use a new key for a new event")
	}
	if err != nil {
		return err
	}
	if !replayed {
		a.announce(r.Context(), rem.Key)
	}
	out, err := a.renderEvent(r, ev, rem.Key)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/events/"+strconv.FormatInt(ev.ID, 10))
	status := http.StatusAccepted
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
		status = http.StatusOK
	}
	writeJSON(w, status, out)
	return nil
}

// canonicalJSON re-encodes a JSON document with object keys sorted and no
// spaces, keeping numbers as written.
func canonicalJSON(raw json.RawMessage) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

func fireAtKey(at *time.Time) string {
	if at == nil {
		return "now"
	}
	return at.UTC().Format(time.RFC3339Nano)
}

func (a *API) findEvent(r *http.Request, app int64) (store.Event, string, error) {
	var ev store.Event
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return ev, "", problem(http.StatusNotFound, fmt.Sprintf("no event %q", r.PathValue("id")))
	}
	ev, err = store.FindEvent(r.Context(), a.db, app, id)
	if errors.Is(err, store.ErrNotFound) {
		return ev, "", problem(http.StatusNotFound, fmt.Sprintf("no event %d", id))
	}
	if err != nil {
		return ev, "", err
	}
	key, err := store.ReminderKey(r.Context(), a.db, ev.ReminderID)
	if err != nil {
		return ev, "", err
	}
	return ev, key, nil
}

func (a *API) renderEvent(r *http.Request, ev store.Event, topic string) (Event, error) {
	rows, err := store.EventOccurrences(r.Context(), a.db, ev.ID)
	return eventOf(ev, topic, rows), err
}

// eventOf is the API's form of a topic's event and its occurrences.
func eventOf(ev store.Event, topic string, rows []store.OccurrenceRow) Event {
	return Event{
		ID: ev.ID, Topic: topic, Data: json.RawMessage(ev.Data), FireAt: ev.FireAt.UTC(), Canceled: ev.Canceled,
		CreatedAt: ev.CreatedAt.UTC(), Occurrences: occurrences(rows, topic),
	}
}

// MaxEventsPage bounds the events one GET /v1/events answers.
const MaxEventsPage = 100

// listEvents lists a topic's events, the newest first, each with its
// occurrences; next is the before cursor of the next page.
func (a *API) listEvents(w http.ResponseWriter, r *http.Request, app int64) error {
	key := r.URL.Query().Get("topic")
	if key == "" {
		return problem(http.StatusBadRequest, "query parameter topic (a topic reminder's key) is required")
	}
	limit, p := intParam(r, "limit", 20, 1, MaxEventsPage)
	if p != nil {
		return p
	}
	var before int64
	if s := r.URL.Query().Get("before"); s != "" {
		var err error
		if before, err = strconv.ParseInt(s, 10, 64); err != nil || before < 1 {
			return problem(http.StatusBadRequest, "query parameter before must be a positive event ID: the next of the previous page")
		}
	}
	rem, err := a.findReminder(r, app, key)
	if err != nil {
		return err
	}
	if rem.Kind != store.KindTopic {
		return problem(http.StatusBadRequest, fmt.Sprintf("reminder %q is of kind %s; events belong to topic reminders", key, rem.Kind))
	}
	evs, occ, err := store.TopicEvents(r.Context(), a.db, rem.ID, before, limit)
	if err != nil {
		return err
	}
	out := struct {
		Events []Event `json:"events"`
		Next   string  `json:"next,omitempty"`
	}{Events: make([]Event, len(evs))}
	for i, ev := range evs {
		out.Events[i] = eventOf(ev, key, occ[ev.ID])
	}
	if len(evs) == limit {
		out.Next = strconv.FormatInt(evs[len(evs)-1].ID, 10)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) getEvent(w http.ResponseWriter, r *http.Request, app int64) error {
	ev, topic, err := a.findEvent(r, app)
	if err != nil {
		return err
	}
	out, err := a.renderEvent(r, ev, topic)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// deleteEvent cancels an event that has not fired; its scheduled
// occurrences are canceled by the planner.
func (a *API) deleteEvent(w http.ResponseWriter, r *http.Request, app int64) error {
	ev, topic, err := a.findEvent(r, app)
	if err != nil {
		return err
	}
	err = store.CancelEvent(r.Context(), a.db, ev.ID)
	if errors.Is(err, store.ErrFired) {
		return problem(http.StatusConflict, fmt.Sprintf("event %d has already fired", ev.ID))
	}
	if err != nil {
		return err
	}
	a.announce(r.Context(), topic)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
