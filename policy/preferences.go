package policy

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/chime-dev/chime/message"
	"github.com/chime-dev/chime/sender"
)

// Limits of the preferences and settings documents.
const (
	// MaxOptOuts bounds each list of a user's preferences (reminders,
	// categories).
	MaxOptOuts = 100
	// MaxCaps bounds an app's frequency caps (one per category).
	MaxCaps = 50
	// MaxCapCount bounds a cap's count per window.
	MaxCapCount = 1000
	// MinCapWindow and MaxCapWindow bound a cap's rolling window; the
	// window is also how long a user's count stays in Redis.
	MinCapWindow = time.Minute
	MaxCapWindow = 30 * 24 * time.Hour
)

var (
	categoryPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)
	reminderPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$`)
)

// CheckCategory says what is wrong with a category name, "" if nothing:
// 1-32 lowercase letters, digits, '_' or '-'.
func CheckCategory(c string) string {
	if !categoryPattern.MatchString(c) {
		return "must be 1-32 lowercase letters, digits, '_' or '-', starting with a letter or digit"
	}
	return ""
}

// FieldError is one thing wrong with a document, by JSON field.
type FieldError struct {
	Field, Message string
}

// Preferences are what one user turned off, and when they sleep.
type Preferences struct {
	// Reminders are the keys of reminders the user does not want.
	Reminders []string `json:"reminders"`
	// Categories are the reminder categories the user does not want;
	// critical reminders still come.
	Categories []string `json:"categories"`
	// Channels are the channels the user is not to be reached through
	// (sender.Channels); every one of them is an opt-out of all reminders.
	Channels []string `json:"channels"`
	// QuietHours is when the user is not to be reminded, in the local time
	// of the location each reminder reaches them at; nil is the app's
	// default.
	QuietHours *Hours `json:"quiet_hours"`
}

// Hours are a span of local time of day, "22:00" to "07:00"; End before
// Start wraps past midnight.
type Hours struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// quiet reads h.
func (h Hours) quiet(field string, bad func(field, msg string)) message.Quiet {
	s, err1 := clockMinute(h.Start)
	e, err2 := clockMinute(h.End)
	if err1 != nil {
		bad(field+".start", err1.Error())
	}
	if err2 != nil {
		bad(field+".end", err2.Error())
	}
	if err1 == nil && err2 == nil && s == e {
		bad(field+".end", "must differ from start")
	}
	return message.Quiet{Start: s, End: e}
}

func clockMinute(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil || len(s) != 5 {
		return 0, fmt.Errorf(`must be a local time "HH:MM", such as "22:00"`)
	}
	return t.Hour()*60 + t.Minute(), nil
}

func formatMinute(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }

// Check validates p and returns it normalised (lists sorted, each entry
// once, never nil).
func (p Preferences) Check() (Preferences, []FieldError) {
	var errs []FieldError
	bad := func(f, msg string) { errs = append(errs, FieldError{f, msg}) }
	list := func(name string, in []string, check func(string) string) []string {
		if len(in) > MaxOptOuts {
			bad(name, fmt.Sprintf("at most %d entries", MaxOptOuts))
			return nil
		}
		for i, v := range in {
			if msg := check(v); msg != "" {
				bad(name+"["+strconv.Itoa(i)+"]", msg)
			}
		}
		return slices.Compact(slices.Sorted(slices.Values(in)))
	}
	out := Preferences{
		Reminders: list("reminders", p.Reminders, func(k string) string {
			if !reminderPattern.MatchString(k) {
				return "must be a reminder key: 1-100 letters, digits, '_', '.' or '-'"
			}
			return ""
		}),
		Categories: list("categories", p.Categories, CheckCategory),
		Channels: list("channels", p.Channels, func(c string) string {
			if !slices.Contains(sender.Channels, c) {
				return fmt.Sprintf("must be one of %v", sender.Channels)
			}
			return ""
		}),
	}
	if p.QuietHours != nil {
		q := p.QuietHours.quiet("quiet_hours", bad)
		out.QuietHours = &Hours{Start: formatMinute(q.Start), End: formatMinute(q.End)}
	}
	for _, l := range []*[]string{&out.Reminders, &out.Categories, &out.Channels} {
		if *l == nil {
			*l = []string{}
		}
	}
	return out, errs
}

// mirror is a user's preferences as the decision script reads them (with
// Redis's cjson): short names, empty parts left out.
type mirror struct {
	Reminders  []string `json:"r,omitempty"`
	Categories []string `json:"c,omitempty"`
	Channels   []string `json:"ch,omitempty"`
	// None is set when every channel is excluded: nothing reaches the user.
	None  bool  `json:"n,omitempty"`
	Quiet []int `json:"q,omitempty"` // start, end minute
}

// encodeMirror returns the Redis form of a valid preferences document
// (its JSON, as stored in MySQL).
func encodeMirror(doc string) (string, error) {
	var p Preferences
	if err := json.Unmarshal([]byte(doc), &p); err != nil {
		return "", fmt.Errorf("decode preferences: %w", err)
	}
	m := mirror{Reminders: p.Reminders, Categories: p.Categories, Channels: p.Channels}
	m.None = len(p.Channels) > 0
	for _, c := range sender.Channels {
		if !slices.Contains(p.Channels, c) {
			m.None = false
		}
	}
	if p.QuietHours != nil {
		s, err1 := clockMinute(p.QuietHours.Start)
		e, err2 := clockMinute(p.QuietHours.End)
		if err1 == nil && err2 == nil {
			m.Quiet = []int{s, e}
		}
	}
	b, err := json.Marshal(m)
	return string(b), err
}

// Settings are an app's delivery defaults.
type Settings struct {
	// QuietHours applies to users who set none; nil is none.
	QuietHours *Hours `json:"quiet_hours"`
	// FrequencyCaps bound, per category, how many reminders of it one user
	// gets in a rolling window.
	FrequencyCaps map[string]Cap `json:"frequency_caps"`
}

// Cap is at most Max reminders per user in a rolling Window ("24h").
type Cap struct {
	Max    int    `json:"max"`
	Window string `json:"window"`
}

// Check validates s and returns it normalised.
func (s Settings) Check() (Settings, []FieldError) {
	var errs []FieldError
	bad := func(f, msg string) { errs = append(errs, FieldError{f, msg}) }
	out := Settings{FrequencyCaps: map[string]Cap{}}
	if s.QuietHours != nil {
		q := s.QuietHours.quiet("quiet_hours", bad)
		out.QuietHours = &Hours{Start: formatMinute(q.Start), End: formatMinute(q.End)}
	}
	if len(s.FrequencyCaps) > MaxCaps {
		bad("frequency_caps", fmt.Sprintf("at most %d categories", MaxCaps))
		return out, errs
	}
	for _, cat := range slices.Sorted(maps.Keys(s.FrequencyCaps)) {
		c := s.FrequencyCaps[cat]
		f := "frequency_caps." + cat
		if msg := CheckCategory(cat); msg != "" {
			bad("frequency_caps", "category "+strconv.Quote(cat)+" "+msg)
			continue
		}
		if c.Max < 1 || c.Max > MaxCapCount {
			bad(f+".max", fmt.Sprintf("must be between 1 and %d", MaxCapCount))
		}
		w, err := time.ParseDuration(c.Window)
		if err != nil || w < MinCapWindow || w > MaxCapWindow || w%time.Second != 0 {
			bad(f+".window", fmt.Sprintf(`must be a whole-second duration between %s and %s, such as "24h"`, MinCapWindow, MaxCapWindow))
			continue
		}
		out.FrequencyCaps[cat] = Cap{Max: c.Max, Window: w.String()}
	}
	return out, errs
}

// Snapshot is the policy a task carries for a reminder of category,
// critical and quiet mode, under the app's settings document (JSON, ""
// for none): what workers need, so that they never read the settings.
func Snapshot(category string, critical bool, quietMode string, settingsDoc string) (*message.Policy, error) {
	p := &message.Policy{Category: category, Critical: critical, Drop: quietMode == "drop"}
	if settingsDoc == "" {
		return p, nil
	}
	var s Settings
	if err := json.Unmarshal([]byte(settingsDoc), &s); err != nil {
		return nil, fmt.Errorf("decode delivery settings: %w", err)
	}
	if s.QuietHours != nil {
		st, err1 := clockMinute(s.QuietHours.Start)
		e, err2 := clockMinute(s.QuietHours.End)
		if err1 == nil && err2 == nil {
			p.Quiet = &message.Quiet{Start: st, End: e}
		}
	}
	if c, ok := s.FrequencyCaps[category]; ok && category != "" {
		w, err := time.ParseDuration(c.Window)
		if err == nil {
			p.CapMax, p.CapWindow = c.Max, w
		}
	}
	return p, nil
}
