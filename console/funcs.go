package console

import (
	"encoding/json"
	"html/template"
	"strings"
	"time"

	"github.com/chime-dev/chime/localtime"
	"github.com/chime-dev/chime/prayer"
)

var funcs = template.FuncMap{
	"join": strings.Join,
	"add":  func(a, b int) int { return a + b },
	"days": func() int { return TimelineDays },
	"utc":  func(t time.Time) string { return t.UTC().Format(utcLayout) },
	// now is the local time at zone, with its abbreviation and offset.
	"now": func(zone string) string {
		loc, err := localtime.LoadZone(zone)
		if err != nil {
			return "?"
		}
		return localLine(time.Now(), loc)
	},
	"zones": func() []string { return commonZones },
	// The prayer conventions' names, for the menus; custom angles are
	// only given to a preview, not stored.
	"prayerNames":   func() []prayer.Prayer { return prayer.Prayers },
	"methods":       storedMethods,
	"defaultMethod": func() prayer.Method { return prayer.DefaultMethod },
	"madhabs":       func() []prayer.Madhab { return []prayer.Madhab{prayer.Shafi, prayer.Hanafi} },
	"latitudeRules": func() []prayer.HighLatitudeRule { return prayer.HighLatitudeRules },
	"diffText":      diffText,
	"coord":         coordText,
	// ruleName is the editor's name of a recurrence preset, or "".
	"ruleName": func(rule string) string {
		for _, p := range presets {
			if p.Rule == rule && p.Rule != customRule {
				return p.Label
			}
		}
		return ""
	},
}

func storedMethods() []prayer.Method {
	var out []prayer.Method
	for _, m := range prayer.Methods {
		if m != prayer.Custom {
			out = append(out, m)
		}
	}
	return out
}

// diffText shows one field's change, {"before": x, "after": y}, as
// "x → y" in JSON.
func diffText(raw json.RawMessage) string {
	var d struct{ Before, After json.RawMessage }
	if err := json.Unmarshal(raw, &d); err != nil {
		return string(raw)
	}
	short := func(v json.RawMessage) string {
		s := string(v)
		if s == "" {
			s = "null"
		}
		if len(s) > 200 {
			s = s[:200] + "…"
		}
		return s
	}
	return short(d.Before) + " → " + short(d.After)
}

// commonZones are offered as the zone fields' suggestions; any IANA zone is
// accepted.
var commonZones = []string{
	"UTC", "Africa/Cairo", "Africa/Casablanca", "Africa/Johannesburg", "Africa/Lagos", "Africa/Nairobi",
	"America/Chicago", "America/Denver", "America/Los_Angeles", "America/Mexico_City", "America/New_York",
	"America/Sao_Paulo", "America/Toronto", "Asia/Dhaka", "Asia/Dubai", "Asia/Jakarta", "Asia/Karachi",
	"Asia/Kolkata", "Asia/Riyadh", "Asia/Shanghai", "Asia/Singapore", "Asia/Tehran", "Asia/Tokyo",
	"Australia/Sydney", "Europe/Berlin", "Europe/Istanbul", "Europe/London", "Europe/Madrid", "Europe/Moscow",
	"Europe/Paris", "Pacific/Auckland",
}
