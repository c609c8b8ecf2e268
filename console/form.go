package console

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/message"
	"github.com/chime-dev/chime/store"
)

// kind is a reminder kind as the editor offers it: the parts of the form it
// shows. Adding a kind is an entry here, and for a part of its own a
// section in editor.html and its fields in form and input.
type kind struct {
	Name, Label string
	Parts       []string
}

var kinds = []kind{
	{Name: store.KindDaily, Label: "Daily, at local times of day", Parts: []string{"times", "recurrence"}},
	{Name: store.KindTimetable, Label: "Timetable, a time per date (imported)", Parts: []string{"locations"}},
	{Name: store.KindOnce, Label: "Once, at an instant", Parts: []string{"at", "locations"}},
	{Name: store.KindTopic, Label: "Topic, fired by events", Parts: []string{"schema", "locations"}},
	{Name: store.KindPrayer, Label: "Prayer, at times computed from coordinates", Parts: []string{"prayers", "locations", "recurrence"}},
}

// preset is a recurrence the editor offers by name; "custom" takes the
// rule typed beside it.
type preset struct{ Rule, Label string }

const customRule = "custom"

var presets = []preset{
	{"", "Every day"},
	{"FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", "Weekdays (Monday to Friday)"},
	{"FREQ=WEEKLY;BYDAY=FR", "Every Friday"},
	{customRule, "Another rule (RRULE, typed below)"},
}

func kindOf(name string) kind {
	for _, k := range kinds {
		if k.Name == name {
			return k
		}
	}
	return kinds[0]
}

// Blank rows the editor adds after the filled ones.
const blankRows = 3

type timeRow struct{ Location, Zone, LocalTime string }

// userZones reports whether the row is a time in each user's own zone: a
// local time with no location or zone.
func (t timeRow) userZones() bool { return t.Location == "" && t.Zone == "" && t.LocalTime != "" }

// localAt reports whether a once reminder's at is a wall-clock time
// without offset, which fires at that time in each zone.
func localAt(v string) bool {
	for _, layout := range []string{api.LocalLayout, "2006-01-02T15:04"} {
		if _, err := time.Parse(layout, v); err == nil {
			return true
		}
	}
	return false
}

type placeRow struct{ Location, Zone string }
type textRow struct{ Lang, Title, Body string }
type prayerRow struct{ Prayer, Offset string }

// form is the reminder editor's fields, as text.
type form struct {
	New                           bool
	Key, Kind, Title, Body, Lang  string
	Tags, Groups, ValidFor, Grace string
	StartsAt, EndsAt, At, Offsets string
	Schema                        string
	// Recurrence is the RRULE of a daily or prayer reminder; Method,
	// Madhab and HighLatitudeRule a prayer reminder's convention.
	Recurrence, Method, Madhab, HighLatitudeRule string
	Prayers                                      []prayerRow
	Paused, DeliverWhenOnline, Notify            bool
	Times                                        []timeRow
	Locations                                    []placeRow
	Translations                                 []textRow
	// Spread is the reminder's spread ("15m"), empty for none.
	Spread string
	// Category, Critical and Quiet are the reminder's delivery policy
	// (docs/preferences.md): Quiet is "hold" or "drop".
	Category, Quiet string
	Critical        bool
	// Errors are the problems by field name ("title", "times.2.zone");
	// Other are those no field shows.
	Errors map[string]string
	Other  []string
	// rows map the API's indices of times and locations (blank rows
	// skipped) to the form's.
	timeIdx, placeIdx, prayerIdx []int
}

// Presets lists the recurrence menu.
func (f *form) Presets() []preset { return presets }

// Preset is the menu's entry of the form's rule: its preset, or custom.
func (f *form) Preset() string {
	for _, p := range presets {
		if p.Rule == f.Recurrence {
			return p.Rule
		}
	}
	return customRule
}

// Kinds lists the kinds for the kind menu.
func (f *form) Kinds() []kind { return kinds }

// Shows tells whether the form's kind has part.
func (f *form) Shows(part string) bool {
	for _, p := range kindOf(f.Kind).Parts {
		if p == part {
			return true
		}
	}
	return false
}

// Err is the problem of field, if any.
func (f *form) Err(field string) string { return f.Errors[field] }

// Err2 is the problem of a row's field ("times", 2, "zone").
func (f *form) Err2(list string, i int, field string) string {
	return f.Errors[fmt.Sprintf("%s.%d.%s", list, i, field)]
}

func (f *form) pad() {
	for range blankRows {
		f.Times = append(f.Times, timeRow{})
		f.Locations = append(f.Locations, placeRow{})
		f.Translations = append(f.Translations, textRow{})
		f.Prayers = append(f.Prayers, prayerRow{})
	}
}

// repad is pad after dropping the trailing blank rows, so that a form
// shown again keeps blankRows of them; the filled rows keep their places,
// and so the problems beside them.
func (f *form) repad() {
	f.Times = trimBlank(f.Times)
	f.Locations = trimBlank(f.Locations)
	f.Translations = trimBlank(f.Translations)
	f.Prayers = trimBlank(f.Prayers)
	f.pad()
}

func trimBlank[T comparable](rows []T) []T {
	var zero T
	for len(rows) > 0 && rows[len(rows)-1] == zero {
		rows = rows[:len(rows)-1]
	}
	return rows
}

// formOf is the editor's form of a stored reminder.
func formOf(rem api.Reminder) *form {
	f := &form{Key: rem.Key, Kind: rem.Kind, Title: rem.Title, Body: rem.Body, Lang: rem.Lang, Tags: strings.Join(rem.Tags, ", "),
		Groups: strconv.Itoa(rem.Groups), ValidFor: rem.ValidFor, Grace: rem.Grace, Offsets: strings.Join(rem.Offsets, ", "),
		Paused: rem.Paused, DeliverWhenOnline: rem.DeliverWhenOnline, Notify: rem.NotifyContacts, Errors: map[string]string{},
		Recurrence: rem.Recurrence, Method: rem.Method, Madhab: rem.Madhab, HighLatitudeRule: rem.HighLatitudeRule}
	for _, p := range rem.Prayers {
		f.Prayers = append(f.Prayers, prayerRow{p.Prayer, p.Offset})
	}
	stamp := func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	f.StartsAt, f.EndsAt, f.At = stamp(rem.StartsAt), stamp(rem.EndsAt), stamp(rem.At)
	if rem.Local && rem.At != nil {
		f.At = rem.At.Format(api.LocalLayout) // no offset: local in each zone
	}
	if len(rem.Schema) > 0 {
		f.Schema = string(rem.Schema)
	}
	for _, t := range rem.Times {
		f.Times = append(f.Times, timeRow{t.Location, t.Zone, t.LocalTime})
	}
	for _, l := range rem.Locations {
		f.Locations = append(f.Locations, placeRow{l.Location, l.Zone})
	}
	for lang, t := range rem.Translations {
		f.Translations = append(f.Translations, textRow{lang, t.Title, t.Body})
	}
	f.Spread = rem.Spread
	f.Category, f.Critical, f.Quiet = rem.Category, rem.Critical, rem.Quiet
	f.pad()
	return f
}

// parseForm reads the editor's fields.
func parseForm(v url.Values) *form {
	f := &form{New: v.Get("new") == "1", Key: strings.TrimSpace(v.Get("key")), Kind: v.Get("kind"), Title: v.Get("title"), Body: v.Get("body"),
		Lang: strings.TrimSpace(v.Get("lang")), Tags: v.Get("tags"), Groups: strings.TrimSpace(v.Get("groups")),
		ValidFor: strings.TrimSpace(v.Get("valid_for")), Grace: strings.TrimSpace(v.Get("grace")),
		StartsAt: strings.TrimSpace(v.Get("starts_at")), EndsAt: strings.TrimSpace(v.Get("ends_at")),
		At: strings.TrimSpace(v.Get("at")), Offsets: v.Get("offsets"), Schema: v.Get("schema"),
		Paused: v.Get("paused") == "on", DeliverWhenOnline: v.Get("deliver_when_online") == "on", Notify: v.Get("notify_contacts") == "on",
		Method: strings.TrimSpace(v.Get("method")), Madhab: strings.TrimSpace(v.Get("madhab")),
		HighLatitudeRule: strings.TrimSpace(v.Get("high_latitude_rule")), Errors: map[string]string{}}
	// A preset names its rule; "custom" (or no menu, as without the
	// script's help) takes the typed one.
	f.Recurrence = strings.TrimSpace(v.Get("recurrence"))
	if p, ok := v["recurrence_preset"]; ok && p[0] != customRule {
		f.Recurrence = p[0]
	}
	f.Spread = strings.TrimSpace(v.Get("spread"))
	f.Category, f.Quiet = strings.TrimSpace(v.Get("category")), strings.TrimSpace(v.Get("quiet"))
	f.Critical = v.Get("critical") == "on"
	if f.Kind == "" {
		f.Kind = store.KindDaily
	}
	raw := func(name string, i int) string {
		if vs := v[name]; i < len(vs) {
			return vs[i]
		}
		return ""
	}
	col := func(name string, i int) string { return strings.TrimSpace(raw(name, i)) }
	for i := range len(v["times.location"]) {
		f.Times = append(f.Times, timeRow{col("times.location", i), col("times.zone", i), col("times.local_time", i)})
	}
	for i := range len(v["locations.location"]) {
		f.Locations = append(f.Locations, placeRow{col("locations.location", i), col("locations.zone", i)})
	}
	for i := range len(v["translations.lang"]) {
		f.Translations = append(f.Translations, textRow{col("translations.lang", i), col("translations.title", i), raw("translations.body", i)})
	}
	for i := range len(v["prayers.prayer"]) {
		f.Prayers = append(f.Prayers, prayerRow{col("prayers.prayer", i), col("prayers.offset", i)})
	}
	return f
}

// input is the form as the API's PUT /v1/reminders/{key} body; what cannot
// be written there (a date that is not one) is put in Errors.
func (f *form) input() map[string]any {
	in := map[string]any{"kind": f.Kind, "title": f.Title, "body": f.Body, "paused": f.Paused,
		"deliver_when_online": f.DeliverWhenOnline, "notify_contacts": f.Notify}
	set := func(name, v string) {
		if v != "" {
			in[name] = v
		}
	}
	set("lang", f.Lang)
	set("valid_for", f.ValidFor)
	set("grace", f.Grace)
	set("spread", f.Spread)
	set("category", f.Category)
	set("quiet", f.Quiet)
	in["critical"] = f.Critical
	if f.Groups != "" {
		n, err := strconv.Atoi(f.Groups)
		if err != nil {
			f.Errors["groups"] = "must be a whole number"
		} else {
			in["groups"] = n
		}
	}
	instant := func(name, v string) {
		if v == "" {
			return
		}
		if name == "at" && localAt(v) {
			in["at"], in["local"] = v, true // a wall-clock time in each zone
			return
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			f.Errors[name] = "must be an instant with its offset, such as 2027-03-01T18:00:00Z or 2027-03-01T19:00:00+01:00"
			return
		}
		in[name] = t
	}
	if f.Shows("at") {
		instant("at", f.At)
		if offs := splitList(f.Offsets); len(offs) > 0 {
			in["offsets"] = offs
		}
	}
	instant("starts_at", f.StartsAt)
	instant("ends_at", f.EndsAt)
	if tags := splitList(f.Tags); len(tags) > 0 {
		in["tags"] = tags
	}
	if f.Shows("schema") && strings.TrimSpace(f.Schema) != "" {
		if !json.Valid([]byte(f.Schema)) {
			f.Errors["schema"] = "is not valid JSON"
		} else {
			in["schema"] = json.RawMessage(f.Schema)
		}
	}
	f.timeIdx, f.placeIdx = nil, nil
	if f.Shows("times") {
		times := []api.ReminderTime{}
		for i, t := range f.Times {
			if t == (timeRow{}) {
				continue
			}
			f.timeIdx = append(f.timeIdx, i)
			if t.userZones() {
				times = append(times, api.ReminderTime{UserZones: true, LocalTime: t.LocalTime})
				continue
			}
			times = append(times, api.ReminderTime{Location: t.Location, Zone: t.Zone, LocalTime: t.LocalTime})
		}
		in["times"] = times
	}
	if f.Shows("locations") {
		places := []api.Place{}
		for i, l := range f.Locations {
			if l == (placeRow{}) {
				continue
			}
			f.placeIdx = append(f.placeIdx, i)
			places = append(places, api.Place{Location: l.Location, Zone: l.Zone})
		}
		in["locations"] = places
	}
	if f.Shows("recurrence") && f.Recurrence != "" {
		in["recurrence"] = f.Recurrence
	}
	f.prayerIdx = nil
	if f.Shows("prayers") {
		prayers := []api.PrayerOffset{}
		for i, p := range f.Prayers {
			if p == (prayerRow{}) {
				continue
			}
			f.prayerIdx = append(f.prayerIdx, i)
			prayers = append(prayers, api.PrayerOffset{Prayer: p.Prayer, Offset: p.Offset})
		}
		in["prayers"] = prayers
		set("method", f.Method)
		set("madhab", f.Madhab)
		set("high_latitude_rule", f.HighLatitudeRule)
	}
	tr := map[string]message.Text{}
	for _, t := range f.Translations {
		if t != (textRow{}) {
			tr[t.Lang] = message.Text{Title: t.Title, Body: t.Body}
		}
	}
	if len(tr) > 0 {
		in["translations"] = tr
	}
	return in
}

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

var rowField = regexp.MustCompile(`^(times|locations|prayers)\[(\d+)\]\.?(.*)$`)

// rowFirst is the field a row's own problem ("locations[0]: has no
// coordinates") is shown beside.
var rowFirst = map[string]string{"times": "location", "locations": "location", "prayers": "prayer"}

// problems puts the API's field errors beside the form's fields.
func (f *form) problems(p *api.Problem) {
	if len(p.Errors) == 0 {
		f.Other = append(f.Other, p.Detail)
	}
	for _, e := range p.Errors {
		name := e.Field
		if m := rowField.FindStringSubmatch(e.Field); m != nil {
			i, _ := strconv.Atoi(m[2])
			idx := map[string][]int{"times": f.timeIdx, "locations": f.placeIdx, "prayers": f.prayerIdx}[m[1]]
			field := cmp.Or(m[3], rowFirst[m[1]])
			if i < len(idx) {
				name = fmt.Sprintf("%s.%d.%s", m[1], idx[i], field)
			}
		}
		if strings.HasPrefix(name, "offsets[") {
			name = "offsets"
		}
		if _, shown := fieldNames[name]; shown || rowField.MatchString(e.Field) && name != e.Field {
			f.Errors[name] = e.Message
			continue
		}
		f.Other = append(f.Other, e.Field+": "+e.Message)
	}
}

// fieldNames are the form's fields that show their own error.
var fieldNames = map[string]struct{}{
	"key": {}, "kind": {}, "title": {}, "body": {}, "lang": {}, "tags": {}, "groups": {}, "valid_for": {}, "grace": {},
	"starts_at": {}, "ends_at": {}, "at": {}, "offsets": {}, "schema": {}, "times": {}, "locations": {}, "translations": {},
	"recurrence": {}, "prayers": {}, "method": {}, "madhab": {}, "high_latitude_rule": {},
	"spread": {}, "category": {}, "critical": {}, "quiet": {},
}
