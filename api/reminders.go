package api

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chime-dev/chime/content"
	"github.com/chime-dev/chime/grouping"
	"github.com/chime-dev/chime/localtime"
	"github.com/chime-dev/chime/message"
	"github.com/chime-dev/chime/policy"
	"github.com/chime-dev/chime/prayer"
	"github.com/chime-dev/chime/recurrence"
	"github.com/chime-dev/chime/store"
)

// DefaultValidFor is the validity window of a reminder that does not set one.
const DefaultValidFor = 15 * time.Minute

var keyPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$`)

// ReminderTime is one entry of a reminder's times.
type ReminderTime struct {
	Location  string `json:"location,omitempty"`
	Zone      string `json:"zone,omitempty"`
	LocalTime string `json:"local_time"`
	// UserZones makes the local time apply in each user's own zone (users
	// registered with a zone, package userzone); such an entry names no
	// location.
	UserZones bool `json:"user_zones,omitempty"`
}

// Place is a location and its zone.
type Place struct {
	Location string `json:"location"`
	Zone     string `json:"zone"`
}

// GlobalPlace is where once and topic reminders that name no location
// group their subscribers.
var GlobalPlace = Place{Location: "global", Zone: "UTC"}

// Reminder is the JSON form of a reminder.
type Reminder struct {
	Key       string          `json:"key"`
	Kind      string          `json:"kind"`
	Title     string          `json:"title"`
	Body      string          `json:"body"`
	Groups    int             `json:"groups"`
	ValidFor  string          `json:"valid_for"`
	Grace     string          `json:"grace"`
	StartsAt  *time.Time      `json:"starts_at,omitempty"`
	EndsAt    *time.Time      `json:"ends_at,omitempty"`
	At        *time.Time      `json:"at,omitempty"`
	Offsets   []string        `json:"offsets,omitempty"`
	Schema    json.RawMessage `json:"schema,omitempty"`
	Paused    bool            `json:"paused"`
	Times     []ReminderTime  `json:"times"`
	Locations []Place         `json:"locations"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`

	Lang         string                  `json:"lang"`
	Translations map[string]message.Text `json:"translations"`
	Tags         []string                `json:"tags"`

	// DeliverWhenOnline keeps the reminder for offline users until they
	// connect to a gateway, instead of pushing it.
	DeliverWhenOnline bool `json:"deliver_when_online"`
	// NotifyContacts sends the reminder to an offline user's contacts.
	NotifyContacts bool `json:"notify_contacts"`
	// Recurrence is the RFC 5545 RRULE naming the local dates a daily or
	// prayer reminder fires on; absent means every day.
	Recurrence string `json:"recurrence,omitempty"`

	// Prayers are what a prayer reminder fires for, and Method, Madhab and
	// HighLatitudeRule its convention (package prayer's names); a
	// location's own override takes precedence.
	Prayers          []PrayerOffset `json:"prayers,omitempty"`
	Method           string         `json:"method,omitempty"`
	Madhab           string         `json:"madhab,omitempty"`
	HighLatitudeRule string         `json:"high_latitude_rule,omitempty"`

	// Category names the kind of reminder for users' opt-outs and the
	// app's frequency caps; Critical reminders ignore category opt-outs and
	// quiet hours; Quiet is what quiet hours do: "hold" or "drop".
	Category string `json:"category,omitempty"`
	Critical bool   `json:"critical"`
	Quiet    string `json:"quiet"`
	// Spread delivers each fire's users evenly over this long after the
	// instant (a spread send); absent sends them all at the instant.
	Spread string `json:"spread,omitempty"`
	// Local makes a once reminder's At a wall-clock time, written without
	// an offset, at that local time in each user's zone and at each
	// location in its zone.
	Local bool `json:"local,omitempty"`
}

// LocalLayout is how a local once reminder's at is written: a wall-clock
// time without offset.
const LocalLayout = "2006-01-02T15:04:05"

// MarshalJSON writes a local once reminder's at as a wall-clock time.
func (r Reminder) MarshalJSON() ([]byte, error) {
	type plain Reminder
	if !r.Local || r.At == nil {
		return json.Marshal(plain(r))
	}
	return json.Marshal(struct {
		plain
		At string `json:"at"`
	}{plain(r), r.At.Format(LocalLayout)})
}

// atValue is a once reminder's at as written: an RFC 3339 instant, or with
// local a wall-clock time; validate reads it.
type atValue string

func (a *atValue) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return &json.UnmarshalTypeError{Value: "non-string", Type: reflect.TypeFor[string](), Field: "at"}
	}
	*a = atValue(s)
	return nil
}

// PrayerOffset is one prayer a prayer reminder fires for: "fajr" at
// "-10m" fires ten minutes before fajr.
type PrayerOffset struct {
	Prayer string `json:"prayer"`
	Offset string `json:"offset"`
}

type reminderInput struct {
	Kind      string          `json:"kind"`
	Title     string          `json:"title"`
	Body      string          `json:"body"`
	Groups    *int            `json:"groups"`
	ValidFor  string          `json:"valid_for"`
	Grace     string          `json:"grace"`
	StartsAt  *time.Time      `json:"starts_at"`
	EndsAt    *time.Time      `json:"ends_at"`
	At        *atValue        `json:"at"`
	Offsets   []string        `json:"offsets"`
	Schema    json.RawMessage `json:"schema"`
	Paused    bool            `json:"paused"`
	Times     []ReminderTime  `json:"times"`
	Locations []Place         `json:"locations"`

	Lang         string                  `json:"lang"`
	Translations map[string]message.Text `json:"translations"`
	Tags         []string                `json:"tags"`

	DeliverWhenOnline bool `json:"deliver_when_online"`
	NotifyContacts    bool `json:"notify_contacts"`

	Recurrence string `json:"recurrence"`

	Prayers          []PrayerOffset `json:"prayers"`
	Method           string         `json:"method"`
	Madhab           string         `json:"madhab"`
	HighLatitudeRule string         `json:"high_latitude_rule"`

	Local    bool   `json:"local"`
	Spread   string `json:"spread"`
	Category string `json:"category"`
	Critical bool   `json:"critical"`
	Quiet    string `json:"quiet"`
}

type parsedTime struct {
	location, zone string
	sec            int
}

// parsedReminder is a valid reminderInput.
type parsedReminder struct {
	kind            string
	groups          int
	validFor, grace time.Duration
	times           []parsedTime
	places          []Place // every location named, times' first
	offsets         string
	schema          string
	content         content.Content
	recurrence      recurrence.Rule
	prayers         []store.PrayerOffset
	at              *time.Time // a local one's wall clock read as UTC
	zoneTimes       []int      // times of day in users' own zones
	spread          time.Duration
}

// MaxSpread bounds a reminder's spread: its groups go on the queue over at
// most this long after the instant (and never past the validity window).
const MaxSpread = 24 * time.Hour

// MaxOffset bounds how long before its instant a once reminder may fire.
const MaxOffset = 30 * 24 * time.Hour

func (in *reminderInput) validate(reg *content.Registry, now time.Time) (out parsedReminder, p *Problem) {
	var errs []FieldError
	bad := func(field, msg string) { errs = append(errs, FieldError{Field: field, Message: msg}) }
	out.kind = in.Kind
	if out.kind == "" {
		out.kind = store.KindDaily
	}
	switch out.kind {
	case store.KindDaily, store.KindTimetable, store.KindOnce, store.KindTopic, store.KindPrayer:
	default:
		bad("kind", "must be daily, timetable, once, topic or prayer")
	}
	if in.Title == "" {
		bad("title", "is required")
	}
	// No groups: each location's groups are sized from its audience.
	if in.Groups != nil {
		out.groups = *in.Groups
		if out.groups < 1 || out.groups > grouping.MaxGroups {
			bad("groups", fmt.Sprintf("must be between 1 and %d, or left out to size each location's groups from its audience", grouping.MaxGroups))
		}
		out.groups = grouping.Fixed(out.groups)
	}
	out.validFor = DefaultValidFor
	if in.ValidFor != "" {
		d, err := time.ParseDuration(in.ValidFor)
		switch {
		case err != nil:
			bad("valid_for", `must be a duration such as "15m" or "1h30m"`)
		case d < time.Second || d > 7*24*time.Hour:
			bad("valid_for", "must be between 1s and 168h")
		default:
			out.validFor = d
		}
	}
	out.grace = out.validFor
	if in.Grace != "" {
		d, err := time.ParseDuration(in.Grace)
		switch {
		case err != nil:
			bad("grace", `must be a duration such as "5m"`)
		case d < time.Second || d > out.validFor:
			bad("grace", "must be between 1s and valid_for: a fire later than the validity window would deliver nothing")
		default:
			out.grace = d
		}
	}
	if in.Spread != "" {
		d, err := time.ParseDuration(in.Spread)
		switch {
		case err != nil || d%time.Second != 0:
			bad("spread", `must be a whole-second duration such as "15m"`)
		case d < 0 || d > min(out.validFor, MaxSpread):
			bad("spread", fmt.Sprintf("must be between 0s and valid_for (%s), at most %s: every group's slot must be inside the validity window", out.validFor, MaxSpread))
		default:
			out.spread = d
		}
	}
	if in.StartsAt != nil && in.EndsAt != nil && !in.EndsAt.After(*in.StartsAt) {
		bad("ends_at", "must be after starts_at")
	}
	switch out.kind {
	case store.KindDaily:
		if len(in.Times) == 0 {
			bad("times", `at least one {location, zone, local_time} or {"user_zones": true, local_time} is required`)
		}
	default:
		if len(in.Times) > 0 {
			bad("times", "only daily reminders have times of day")
		}
	}
	if out.kind == store.KindOnce {
		if in.At == nil {
			bad("at", "is required for a once reminder: the instant of the event, RFC 3339")
		} else {
			out.at = in.parseAt(bad)
		}
		var secs []string
		seenOff := map[time.Duration]bool{}
		for i, o := range in.Offsets {
			d, err := time.ParseDuration(o)
			switch {
			case err != nil || d < 0 || d > MaxOffset || d%time.Second != 0:
				bad(fmt.Sprintf("offsets[%d]", i), `must be a whole-second duration between 0s and 720h, such as "10m"`)
			case !seenOff[d]:
				seenOff[d] = true
				secs = append(secs, strconv.FormatInt(int64(d/time.Second), 10))
			}
		}
		if len(in.Offsets) > 20 {
			bad("offsets", "at most 20 offsets")
		}
		out.offsets = strings.Join(secs, ",")
	} else {
		if in.At != nil {
			bad("at", "only once reminders have an instant")
		}
		if len(in.Offsets) > 0 {
			bad("offsets", "only once reminders have offsets")
		}
		if in.Local {
			bad("local", "only once reminders have a local at; a daily reminder's times take {\"user_zones\": true, \"local_time\": \"09:00\"}")
		}
	}
	if in.Recurrence != "" {
		out.recurrence = in.validateRecurrence(out.kind, now, bad)
	}
	if out.kind == store.KindPrayer {
		out.prayers = in.validatePrayers(bad)
		if len(in.Locations) == 0 {
			bad("locations", "a prayer reminder fires at its locations: at least one {location, zone}, each with coordinates (PUT /v1/locations/{location})")
		}
	} else {
		for _, f := range []struct{ name, v string }{{"method", in.Method}, {"madhab", in.Madhab}, {"high_latitude_rule", in.HighLatitudeRule}} {
			if f.v != "" {
				bad(f.name, "only prayer reminders have a convention")
			}
		}
		if len(in.Prayers) > 0 {
			bad("prayers", "only prayer reminders have prayers")
		}
	}
	if out.kind == store.KindTopic {
		schema, err := compileTopicSchema(in.Schema)
		if err != nil {
			bad("schema", err.Error())
		} else {
			out.schema = schema
		}
	} else if len(in.Schema) > 0 {
		bad("schema", "only topic reminders have an event schema")
	}
	// Lengths, templates, languages and tags.
	var cerrs []FieldError
	out.content, cerrs = reminderContent(in, reg, out.kind, out.schema)
	errs = append(errs, cerrs...)
	if len(out.content.Lang) > store.MaxLang {
		// language.Parse takes extensions of any length.
		bad("lang", fmt.Sprintf("must be a language tag of at most %d characters", store.MaxLang))
	}
	if len(in.Times) > 10000 {
		bad("times", "at most 10000 entries")
	}
	if len(in.Locations) > 10000 {
		bad("locations", "at most 10000 entries")
	}
	zones := map[string]string{}
	place := func(f, location, zone string) bool {
		if !keyPattern.MatchString(location) {
			bad(f+".location", "is required: 1-100 letters, digits, '_', '.' or '-'")
			return false
		}
		if _, err := localtime.LoadZone(zone); err != nil {
			bad(f+".zone", err.Error())
			return false
		}
		if z, ok := zones[location]; ok && z != zone {
			bad(f+".zone", fmt.Sprintf("location %q is given zones %q and %q; a location has one zone", location, z, zone))
			return false
		} else if !ok {
			zones[location] = zone
			out.places = append(out.places, Place{Location: location, Zone: zone})
		}
		return true
	}
	seen := map[parsedTime]bool{}
	seenZoned := map[int]bool{}
	for i, t := range in.Times {
		f := fmt.Sprintf("times[%d]", i)
		if t.UserZones {
			if t.Location != "" || t.Zone != "" {
				bad(f+".location", "a user_zones time fires in each user's own zone and names no location or zone")
				continue
			}
			sec, err := localtime.Parse(t.LocalTime)
			if err != nil {
				bad(f+".local_time", err.Error())
			} else if !seenZoned[int(sec)] {
				seenZoned[int(sec)] = true
				out.zoneTimes = append(out.zoneTimes, int(sec))
			}
			continue
		}
		if !place(f, t.Location, t.Zone) {
			continue
		}
		sec, err := localtime.Parse(t.LocalTime)
		if err != nil {
			bad(f+".local_time", err.Error())
			continue
		}
		pt := parsedTime{location: t.Location, zone: t.Zone, sec: int(sec)}
		if !seen[pt] {
			seen[pt] = true
			out.times = append(out.times, pt)
		}
	}
	for i, l := range in.Locations {
		place(fmt.Sprintf("locations[%d]", i), l.Location, l.Zone)
	}
	if len(out.places) == 0 && (out.kind == store.KindOnce || out.kind == store.KindTopic) {
		out.places = []Place{GlobalPlace}
	}
	if in.Category != "" {
		if msg := policy.CheckCategory(in.Category); msg != "" {
			bad("category", msg)
		}
	}
	switch in.Quiet {
	case "", store.QuietModeHold, store.QuietModeDrop:
	default:
		bad("quiet", `must be "hold" (the default: held until the quiet hours end) or "drop"`)
	}
	if len(errs) > 0 {
		return out, problem(http.StatusUnprocessableEntity, "the reminder is not valid", errs...)
	}
	return out, nil
}

// parseAt reads a once reminder's at: an RFC 3339 instant, or with local a
// wall-clock time without offset (returned as if it were UTC).
func (in *reminderInput) parseAt(bad func(field, msg string)) *time.Time {
	s := string(*in.At)
	if !in.Local {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			bad("at", `must be an RFC 3339 instant such as "2026-12-24T09:00:00Z"; with "local": true, a wall-clock time without offset such as "2026-12-24T09:00:00"`)
			return nil
		}
		return &t
	}
	for _, layout := range []string{LocalLayout, "2006-01-02T15:04"} {
		if t, err := time.Parse(layout, s); err == nil {
			return &t
		}
	}
	bad("at", `with "local": true, must be a wall-clock time without offset such as "2026-12-24T09:00:00": it happens at that time in each user's zone`)
	return nil
}

// MaxPrayers bounds a prayer reminder's prayers.
const MaxPrayers = 16

// validatePrayers reads a prayer reminder's prayers and convention.
func (in *reminderInput) validatePrayers(bad func(field, msg string)) []store.PrayerOffset {
	var out []store.PrayerOffset
	if len(in.Prayers) == 0 {
		bad("prayers", `at least one {"prayer": "fajr", "offset": "-10m"} is required`)
	}
	if len(in.Prayers) > MaxPrayers {
		bad("prayers", fmt.Sprintf("at most %d entries", MaxPrayers))
		return nil
	}
	seen := map[store.PrayerOffset]bool{}
	for i, p := range in.Prayers {
		f := fmt.Sprintf("prayers[%d]", i)
		name, err := prayer.ParsePrayer(p.Prayer)
		if err != nil {
			bad(f+".prayer", fmt.Sprintf("must be one of %s", prayerNames()))
			continue
		}
		off := time.Duration(0)
		if p.Offset != "" {
			off, err = time.ParseDuration(p.Offset)
			if err != nil || off%time.Second != 0 || off < -store.MaxPrayerOffset || off > store.MaxPrayerOffset {
				bad(f+".offset", `must be a whole-second duration between -6h and 6h, such as "-10m" or "0"`)
				continue
			}
		}
		po := store.PrayerOffset{Prayer: string(name), Offset: off}
		if !seen[po] {
			seen[po] = true
			out = append(out, po)
		}
	}
	params, err := prayer.MethodParams(in.Method)
	if err != nil {
		bad("method", err.Error())
	} else if params.Method == prayer.Custom {
		bad("method", "custom angles are not stored on a reminder; name a convention")
	}
	if _, err := prayer.ParseMadhab(in.Madhab); err != nil {
		bad("madhab", err.Error())
	}
	if _, err := prayer.ParseHighLatitudeRule(in.HighLatitudeRule); err != nil {
		bad("high_latitude_rule", err.Error())
	}
	return out
}

func prayerNames() string {
	names := make([]string, len(prayer.Prayers))
	for i, p := range prayer.Prayers {
		names[i] = string(p)
	}
	return strings.Join(names, ", ")
}

// validateRecurrence reads a daily or prayer reminder's recurrence, which counts from
// the date of starts_at when its dates depend on where it starts.
func (in *reminderInput) validateRecurrence(kind string, now time.Time, bad func(field, msg string)) recurrence.Rule {
	if kind != store.KindDaily && kind != store.KindPrayer {
		bad("recurrence", "only daily and prayer reminders recur; the other kinds name their dates or instants")
		return recurrence.Rule{}
	}
	rule, err := recurrence.Parse(in.Recurrence)
	if err != nil {
		bad("recurrence", err.Error())
		return recurrence.Rule{}
	}
	anchor := localtime.DateOf(now, time.UTC)
	if rule.NeedsAnchor() {
		if in.StartsAt == nil {
			bad("recurrence", "counts from its start (COUNT, INTERVAL above 1, or a day taken from the start such as FREQ=WEEKLY without BYDAY): set starts_at, or name the days")
			return recurrence.Rule{}
		}
		anchor = localtime.DateOf(*in.StartsAt, time.UTC)
	}
	if err := rule.Check(anchor); err != nil {
		bad("recurrence", err.Error())
		return recurrence.Rule{}
	}
	return rule
}

func (a *API) putReminder(w http.ResponseWriter, r *http.Request, app int64) error {
	key := r.PathValue("key")
	if !keyPattern.MatchString(key) {
		return problem(http.StatusUnprocessableEntity, "the reminder key must be 1-100 letters, digits, '_', '.' or '-', starting with a letter or digit")
	}
	var in reminderInput
	if p := decode(w, r, 1<<20, &in); p != nil {
		return p
	}
	in2, p := in.validate(a.cfg.Content, a.cfg.Now())
	if p != nil {
		return p
	}
	ctx := r.Context()
	if in2.kind == store.KindPrayer {
		if p := a.prayerPlaces(r, app, in2.places); p != nil {
			return p
		}
	}
	put := store.ReminderPut{
		Reminder: store.Reminder{
			AppID: app, Key: key, Title: in.Title, Body: in.Body, Groups: in2.groups, ValidForS: int64(in2.validFor / time.Second),
			StartsAt: in.StartsAt, EndsAt: in.EndsAt, Paused: in.Paused,
			Kind: in2.kind, At: in2.at, Offsets: in2.offsets, GraceS: int64(in2.grace / time.Second), Schema: in2.schema,
			Lang: in2.content.Lang, Translations: storeTexts(in2.content.Translations), Tags: in2.content.Tags,
			DeliverWhenOnline: in.DeliverWhenOnline, NotifyContacts: in.NotifyContacts,
			Recurrence: in2.recurrence.String(),
			Prayers:    store.FormatPrayers(in2.prayers), Method: in.Method, Madhab: in.Madhab, HighLatitudeRule: in.HighLatitudeRule,

			Local:    in.Local && in2.kind == store.KindOnce,
			SpreadS:  int64(in2.spread / time.Second),
			Category: in.Category, Critical: in.Critical, Quiet: quietMode(in.Quiet),
		},
		ZoneTimes: in2.zoneTimes,
	}
	for _, pl := range in2.places {
		put.Places = append(put.Places, store.Place{Name: pl.Location, Zone: pl.Zone})
	}
	for _, t := range in2.times {
		put.Times = append(put.Times, store.PlaceTime{Location: t.location, LocalSec: t.sec})
	}
	res, err := store.PutReminder(ctx, a.db, put)
	if err != nil {
		return zoneProblem(err)
	}
	rem, created := res.Reminder, res.Created
	// A location without subscriptions has a complete (empty) index: mark it
	// built so that later subscriptions extend it instead of the first fire
	// rebuilding it from MySQL.
	ids, err := store.UnsubscribedLocations(ctx, a.db, rem.ID)
	if err != nil {
		return err
	}
	var empty []grouping.Loc
	for _, id := range ids {
		empty = append(empty, grouping.Loc{Reminder: rem.ID, Location: id})
	}
	if err := a.index.MarkBuilt(ctx, rem.Groups, empty...); err != nil {
		return err
	}
	a.announce(ctx, key)
	out, err := a.loadReminder(r, app, key)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, out)
	return nil
}

// prayerPlaces refuses a prayer reminder's locations that do not exist yet
// or have no coordinates: its times are computed from them.
func (a *API) prayerPlaces(r *http.Request, app int64, places []Place) error {
	names := make([]string, len(places))
	for i, p := range places {
		names[i] = p.Location
	}
	missing, err := store.LocationsWithoutCoordinates(r.Context(), a.db, app, names)
	if err != nil {
		return err
	}
	if len(missing) == 0 {
		return nil
	}
	var errs []FieldError
	for i, p := range places {
		if missing[p.Location] {
			errs = append(errs, FieldError{Field: fmt.Sprintf("locations[%d]", i),
				Message: fmt.Sprintf("location %q has no coordinates; set them with PUT /v1/locations/%s", p.Location, p.Location)})
		}
	}
	return problem(http.StatusUnprocessableEntity, "a prayer reminder's times are computed from its locations' coordinates", errs...)
}

// quietMode is the stored form of a reminder's quiet mode: "" for the
// default, hold.
func quietMode(q string) string {
	if q == store.QuietModeHold {
		return ""
	}
	return q
}

// zoneProblem answers a location named with another zone than its own.
func zoneProblem(err error) error {
	var ze *store.ZoneError
	if errors.As(err, &ze) {
		return problem(http.StatusConflict, fmt.Sprintf("location %q already has zone %q; a location keeps one zone (use another location name)", ze.Location, ze.Zone))
	}
	return err
}

func (a *API) findReminder(r *http.Request, app int64, key string) (store.Reminder, error) {
	rem, err := store.FindReminder(r.Context(), a.db, app, key)
	if errors.Is(err, store.ErrNotFound) {
		return rem, problem(http.StatusNotFound, fmt.Sprintf("no reminder %q", key))
	}
	return rem, err
}

// render is the JSON form of rem with its times (rows of other reminders
// are skipped).
func render(rem store.Reminder, rows []store.TimeRow, zoneTimes map[int64][]int) Reminder {
	out := Reminder{
		Key: rem.Key, Kind: rem.Kind, Title: rem.Title, Body: rem.Body, Groups: rem.Groups, ValidFor: rem.ValidFor().String(),
		Grace: rem.Grace().String(), StartsAt: rem.StartsAt, EndsAt: rem.EndsAt, At: rem.At, Paused: rem.Paused,
		CreatedAt: rem.CreatedAt.UTC(), UpdatedAt: rem.UpdatedAt.UTC(), Times: []ReminderTime{}, Locations: []Place{},
		Lang: rem.Lang, Translations: apiTexts(rem.Translations), Tags: append([]string{}, rem.Tags...),
		DeliverWhenOnline: rem.DeliverWhenOnline, NotifyContacts: rem.NotifyContacts, Recurrence: rem.Recurrence,
		Method: rem.Method, Madhab: rem.Madhab, HighLatitudeRule: rem.HighLatitudeRule,

		Local:    rem.Local,
		Category: rem.Category, Critical: rem.Critical, Quiet: cmp.Or(rem.Quiet, store.QuietModeHold),
	}
	if rem.SpreadS > 0 {
		out.Spread = rem.Spread().String()
	}
	if ps, err := store.ParsePrayers(rem.Prayers); err == nil && rem.Kind == store.KindPrayer {
		for _, p := range ps {
			out.Prayers = append(out.Prayers, PrayerOffset{Prayer: p.Prayer, Offset: p.Offset.String()})
		}
	}
	if out.At != nil {
		at := out.At.UTC()
		out.At = &at
	}
	if offs, err := store.ParseOffsets(rem.Offsets); err == nil && rem.Kind == store.KindOnce {
		for _, o := range offs {
			out.Offsets = append(out.Offsets, o.String())
		}
	}
	if rem.Schema != "" {
		out.Schema = json.RawMessage(rem.Schema)
	}
	for _, x := range rows {
		if x.ReminderID != rem.ID {
			continue
		}
		if x.LocalSec < 0 {
			out.Locations = append(out.Locations, Place{Location: x.Name, Zone: x.Zone})
		} else {
			out.Times = append(out.Times, ReminderTime{Location: x.Name, Zone: x.Zone, LocalTime: localtime.Of(x.LocalSec).String()})
		}
	}
	for _, sec := range zoneTimes[rem.ID] {
		out.Times = append(out.Times, ReminderTime{UserZones: true, LocalTime: localtime.Of(sec).String()})
	}
	return out
}

func (a *API) loadReminder(r *http.Request, app int64, key string) (Reminder, error) {
	rem, err := a.findReminder(r, app, key)
	if err != nil {
		return Reminder{}, err
	}
	rows, err := store.ReminderRows(r.Context(), a.db, rem.ID)
	if err != nil {
		return Reminder{}, err
	}
	zt, err := store.ZoneTimes(r.Context(), a.db, rem.ID)
	return render(rem, rows, zt), err
}

func (a *API) getReminder(w http.ResponseWriter, r *http.Request, app int64) error {
	out, err := a.loadReminder(r, app, r.PathValue("key"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) listReminders(w http.ResponseWriter, r *http.Request, app int64) error {
	limit, p := intParam(r, "limit", 100, 1, 1000)
	if p != nil {
		return p
	}
	rems, err := store.Reminders(r.Context(), a.db, app, r.URL.Query().Get("after"), limit)
	if err != nil {
		return err
	}
	out := struct {
		Reminders []Reminder `json:"reminders"`
		Next      string     `json:"next,omitempty"`
	}{Reminders: []Reminder{}}
	if len(rems) > 0 {
		ids := make([]int64, len(rems))
		for i, rem := range rems {
			ids[i] = rem.ID
		}
		rows, err := store.ReminderRows(r.Context(), a.db, ids...)
		if err != nil {
			return err
		}
		zt, err := store.ZoneTimes(r.Context(), a.db, ids...)
		if err != nil {
			return err
		}
		for _, rem := range rems {
			out.Reminders = append(out.Reminders, render(rem, rows, zt))
		}
	}
	if len(rems) == limit {
		out.Next = rems[len(rems)-1].Key
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) deleteReminder(w http.ResponseWriter, r *http.Request, app int64) error {
	key := r.PathValue("key")
	rem, err := a.findReminder(r, app, key)
	if err != nil {
		return err
	}
	locs, err := store.DeleteReminder(r.Context(), a.db, rem)
	if err != nil {
		return err
	}
	slices.Sort(locs)
	for _, l := range slices.Compact(locs) {
		if err := a.index.Drop(r.Context(), grouping.Loc{Reminder: rem.ID, Location: l}); err != nil {
			a.log.Warn("drop index of deleted reminder", "reminder", key, "err", err)
		}
	}
	a.announce(r.Context(), key)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func intParam(r *http.Request, name string, def, lo, hi int) (int, *Problem) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, problem(http.StatusBadRequest, fmt.Sprintf("query parameter %s must be an integer from %d to %d", name, lo, hi))
	}
	return n, nil
}
