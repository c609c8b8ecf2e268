package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/chime-dev/chime/inbox"
	"github.com/chime-dev/chime/status"
	"github.com/chime-dev/chime/store"
	"github.com/chime-dev/chime/token"
)

func pathUser(r *http.Request, name string) (string, *Problem) {
	u := r.PathValue(name)
	if msg := validUserID(u); msg != "" {
		return "", problem(http.StatusUnprocessableEntity, name+" "+msg)
	}
	return u, nil
}

// InboxContents is the JSON form of a user's inbox.
type InboxContents struct {
	Pending []inbox.Message `json:"pending"`
	Unread  []inbox.Message `json:"unread"`
}

func (a *API) getInbox(w http.ResponseWriter, r *http.Request, app int64) error {
	user, p := pathUser(r, "user_id")
	if p != nil {
		return p
	}
	c, err := a.cfg.Inbox.List(r.Context(), app, user, a.cfg.Now())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, InboxContents{Pending: c.Pending, Unread: c.Unread})
	return nil
}

type idsInput struct {
	IDs []string `json:"ids"`
}

func readIDs(w http.ResponseWriter, r *http.Request) ([]string, *Problem) {
	var in idsInput
	if p := decode(w, r, 256<<10, &in); p != nil {
		return nil, p
	}
	if len(in.IDs) == 0 || len(in.IDs) > 1000 {
		return nil, problem(http.StatusUnprocessableEntity, "ids must hold 1 to 1000 message IDs", FieldError{Field: "ids", Message: "1 to 1000 message IDs"})
	}
	for i, id := range in.IDs {
		if id == "" || len(id) > 300 || !utf8.ValidString(id) {
			return nil, problem(http.StatusUnprocessableEntity, "a message ID is not valid",
				FieldError{Field: fmt.Sprintf("ids[%d]", i), Message: "must be 1-300 bytes of UTF-8"})
		}
	}
	return in.IDs, nil
}

// ack moves ids (all pending messages if ids is nil) to unread, or applies
// read receipts, records the status changes and answers with the IDs that
// changed.
func (a *API) ack(w http.ResponseWriter, r *http.Request, app int64, user string, ids []string, read bool) error {
	now := a.cfg.Now()
	var changed []string
	var err error
	st, field := status.Delivered, "acknowledged"
	if read {
		st, field = status.Read, "read"
		changed, err = a.cfg.Inbox.Read(r.Context(), app, user, ids, now)
	} else {
		changed, err = a.cfg.Inbox.Delivered(r.Context(), app, user, ids, now)
	}
	// Changes made before an error are recorded all the same (a retry
	// would not report them again); none are recorded at no cost.
	entries := make([]status.Entry, len(changed))
	for i, id := range changed {
		entries[i] = status.Entry{App: app, User: user, Message: id, Occurrence: inbox.OccurrenceOf(id), Channel: status.Inbox, State: st}
	}
	// Their detail is in the inbox; the aggregates count them.
	if err := a.cfg.Status.Count(r.Context(), entries); err != nil {
		a.log.Warn("count inbox status", "err", err)
	}
	if read {
		a.cfg.Opens.Read(r.Context(), app, user, changed, inbox.OccurrenceOf, now)
	}
	if err != nil {
		return err
	}
	if changed == nil {
		changed = []string{}
	}
	writeJSON(w, http.StatusOK, map[string][]string{field: changed})
	return nil
}

func (a *API) ackInbox(w http.ResponseWriter, r *http.Request, app int64) error {
	return a.ackListed(w, r, app, false)
}

func (a *API) clearInbox(w http.ResponseWriter, r *http.Request, app int64) error {
	user, p := pathUser(r, "user_id")
	if p != nil {
		return p
	}
	return a.ack(w, r, app, user, nil, false)
}

func (a *API) readInbox(w http.ResponseWriter, r *http.Request, app int64) error {
	return a.ackListed(w, r, app, true)
}

// ackListed calls ack for the user in the path and the message IDs listed
// in the request body.
func (a *API) ackListed(w http.ResponseWriter, r *http.Request, app int64, read bool) error {
	user, p := pathUser(r, "user_id")
	if p != nil {
		return p
	}
	ids, p := readIDs(w, r)
	if p != nil {
		return p
	}
	return a.ack(w, r, app, user, ids, read)
}

func (a *API) userMessages(w http.ResponseWriter, r *http.Request, app int64) error {
	user, p := pathUser(r, "user_id")
	if p != nil {
		return p
	}
	limit, p := intParam(r, "limit", 100, 1, 1000)
	if p != nil {
		return p
	}
	marks, err := a.cfg.Inbox.Marks(r.Context(), app, user)
	if err != nil {
		return err
	}
	d, err := a.cfg.Status.User(r.Context(), app, user, limit, inbox.OccurrenceOf, marks)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": d})
	return nil
}

func (a *API) listContacts(w http.ResponseWriter, r *http.Request, app int64) error {
	user, p := pathUser(r, "user_id")
	if p != nil {
		return p
	}
	ids, err := store.Contacts(r.Context(), a.db, app, user, 1000)
	if err != nil {
		return err
	}
	if ids == nil {
		ids = []string{}
	}
	writeJSON(w, http.StatusOK, map[string][]string{"contacts": ids})
	return nil
}

func (a *API) putContact(w http.ResponseWriter, r *http.Request, app int64) error {
	user, contact, p := pathContact(r)
	if p != nil {
		return p
	}
	if contact == user {
		return problem(http.StatusUnprocessableEntity, "a user cannot be their own contact")
	}
	created, err := store.AddContact(r.Context(), a.db, app, user, contact)
	if errors.Is(err, store.ErrTooManyContacts) {
		return problem(http.StatusUnprocessableEntity, fmt.Sprintf("a user has at most %d contacts", store.MaxContacts))
	}
	if err != nil {
		return err
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	writeJSON(w, code, map[string]string{"user_id": user, "contact_id": contact})
	return nil
}

func (a *API) deleteContact(w http.ResponseWriter, r *http.Request, app int64) error {
	user, contact, p := pathContact(r)
	if p != nil {
		return p
	}
	err := store.DeleteContact(r.Context(), a.db, app, user, contact)
	return deleted(w, err, fmt.Sprintf("%q is not a contact of %q", contact, user))
}

// pathContact reads the user and the contact from the path.
func pathContact(r *http.Request) (user, contact string, p *Problem) {
	if user, p = pathUser(r, "user_id"); p != nil {
		return "", "", p
	}
	if contact, p = pathUser(r, "contact_id"); p != nil {
		return "", "", p
	}
	return user, contact, nil
}

func pathRegion(r *http.Request) (string, *Problem) {
	region := r.PathValue("region")
	if !keyPattern.MatchString(region) {
		return "", problem(http.StatusUnprocessableEntity, "the region must be 1-100 letters, digits, '_', '.' or '-', starting with a letter or digit")
	}
	return region, nil
}

func (a *API) postAnnouncement(w http.ResponseWriter, r *http.Request, app int64) error {
	region, p := pathRegion(r)
	if p != nil {
		return p
	}
	var in struct {
		Title string          `json:"title"`
		Body  string          `json:"body"`
		Data  json.RawMessage `json:"data"`
	}
	if p := decode(w, r, 64<<10, &in); p != nil {
		return p
	}
	var errs []FieldError
	if in.Title == "" || utf8.RuneCountInString(in.Title) > 200 {
		errs = append(errs, FieldError{Field: "title", Message: "is required, at most 200 characters"})
	}
	if utf8.RuneCountInString(in.Body) > 2000 {
		errs = append(errs, FieldError{Field: "body", Message: "must be at most 2000 characters"})
	}
	if len(in.Data) > 0 && in.Data[0] != '{' {
		errs = append(errs, FieldError{Field: "data", Message: "must be a JSON object"})
	}
	if len(errs) > 0 {
		return problem(http.StatusUnprocessableEntity, "the announcement is not valid", errs...)
	}
	an, err := a.cfg.Announcements.Post(r.Context(), app, region, inbox.Announcement{
		Title: in.Title, Body: in.Body, Data: in.Data, CreatedAt: a.cfg.Now().UTC(),
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, an)
	return nil
}

func (a *API) listAnnouncements(w http.ResponseWriter, r *http.Request, app int64) error {
	region, p := pathRegion(r)
	if p != nil {
		return p
	}
	limit, p := intParam(r, "limit", 100, 1, 1000)
	if p != nil {
		return p
	}
	after := int64(-1)
	if s := r.URL.Query().Get("after"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return problem(http.StatusBadRequest, "query parameter after must be a non-negative integer: the last announcement ID the client has")
		}
		after = n
	}
	// With user_id the server keeps the user's cursor: it is read when the
	// request has no after, and the answer's cursor is recorded.
	user := r.URL.Query().Get("user_id")
	if user != "" {
		if msg := validUserID(user); msg != "" {
			return problem(http.StatusBadRequest, "query parameter user_id "+msg)
		}
		if after < 0 {
			n, err := a.cfg.Announcements.Cursor(r.Context(), app, user, region)
			if err != nil {
				return err
			}
			after = n
		}
	}
	list, cursor, err := a.cfg.Announcements.After(r.Context(), app, region, after, limit)
	if err != nil {
		return err
	}
	if user != "" {
		if err := a.cfg.Announcements.SetCursor(r.Context(), app, user, region, cursor); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"announcements": list, "cursor": cursor})
	return nil
}

func (a *API) occurrenceStatus(w http.ResponseWriter, r *http.Request, app int64) error {
	if id, err := strconv.ParseInt(r.PathValue("id"), 10, 64); err != nil || id <= 0 {
		return problem(http.StatusBadRequest, "the occurrence ID must be a positive integer")
	}
	id, err := a.findOccurrence(r, app)
	if err != nil {
		return err
	}
	counts, err := status.Counts(r.Context(), a.db, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"occurrence": id, "channels": counts})
	return nil
}

// issueToken gives an app backend a gateway token for one of its users,
// signed with the app's current signing key (made on first use).
func (a *API) issueToken(w http.ResponseWriter, r *http.Request, app int64) error {
	user, p := pathUser(r, "user_id")
	if p != nil {
		return p
	}
	now := a.cfg.Now()
	key, err := a.cfg.SigningKeys.Current(r.Context(), app, now)
	if err != nil {
		return signingProblem(err)
	}
	tok, err := token.Issue(key, user, a.cfg.TokenTTL, now)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{"token": tok, "kid": key.ID, "expires_at": now.Add(a.cfg.TokenTTL).UTC().Truncate(time.Second)})
	return nil
}
