package prayer

import (
	"fmt"
	"math"
	"slices"
)

// Method names a calculation convention: the angles, intervals and minute
// adjustments an authority publishes its timetables with.
type Method string

// The conventions, by the names the API and the JSON use.
const (
	MuslimWorldLeague     Method = "muslim_world_league"    // fajr 18°, isha 17°
	Egyptian              Method = "egyptian"               // Egyptian General Authority of Survey: fajr 19.5°, isha 17.5°
	Karachi               Method = "karachi"                // University of Islamic Sciences, Karachi: fajr 18°, isha 18°
	UmmAlQura             Method = "umm_al_qura"            // Umm al-Qura University, Makkah: fajr 18.5°, isha 90 min (120 in Ramadan)
	Dubai                 Method = "dubai"                  // fajr 18.2°, isha 18.2°
	Qatar                 Method = "qatar"                  // fajr 18°, isha 90 min
	Kuwait                Method = "kuwait"                 // fajr 18°, isha 17.5°
	MoonsightingCommittee Method = "moonsighting_committee" // fajr 18°, isha 18°, seasonal twilight
	Singapore             Method = "singapore"              // MUIS: fajr 20°, isha 18°, rounded up
	Turkey                Method = "turkey"                 // Diyanet: fajr 18°, isha 17°
	Tehran                Method = "tehran"                 // Institute of Geophysics, University of Tehran: fajr 17.7°, isha 14°, maghrib 4.5°
	NorthAmerica          Method = "north_america"          // ISNA: fajr 15°, isha 15°
	Custom                Method = "custom"                 // the caller's own angles and intervals, no adjustments
)

// Methods lists every convention, in the order the docs give them.
var Methods = []Method{
	MuslimWorldLeague, Egyptian, Karachi, UmmAlQura, Dubai, Qatar, Kuwait,
	MoonsightingCommittee, Singapore, Turkey, Tehran, NorthAmerica, Custom,
}

// DefaultMethod is the convention used when neither a request nor a
// location names one.
const DefaultMethod = MuslimWorldLeague

// Madhab is the school whose asr is used: the time an object's shadow is
// once (Shafi, also Maliki and Hanbali) or twice (Hanafi) its length, plus
// its shadow at noon.
type Madhab string

const (
	Shafi  Madhab = "shafi"
	Hanafi Madhab = "hanafi"
)

// HighLatitudeRule says how fajr and isha are bounded where the night is too
// short for the sun to reach their angles (or reaches them too close to
// midnight): fajr is never earlier than sunrise minus a portion of the night
// and isha never later than sunset plus that portion.
type HighLatitudeRule string

const (
	MiddleOfTheNight  HighLatitudeRule = "middle_of_the_night"  // portion ½
	SeventhOfTheNight HighLatitudeRule = "seventh_of_the_night" // portion 1/7
	TwilightAngle     HighLatitudeRule = "twilight_angle"       // portion angle/60 (18° → 0.3)
)

// RecommendedRule is the high-latitude rule used when none is given:
// seventh of the night above 48° (north or south), where the middle of the
// night would put fajr and isha at midnight for weeks around the summer
// solstice, and middle of the night elsewhere (where it rarely applies).
func RecommendedRule(latitude float64) HighLatitudeRule {
	if math.Abs(latitude) > 48 {
		return SeventhOfTheNight
	}
	return MiddleOfTheNight
}

// Rounding says how instants are rounded to the minute.
type Rounding string

const (
	Nearest Rounding = "nearest" // half a minute and more rounds up, as most timetables do
	Up      Rounding = "up"      // any seconds round up (Singapore's timetables)
	None    Rounding = "none"    // kept to the second
)

// Shafaq is the twilight the Moonsighting Committee's isha follows.
type Shafaq string

const (
	General Shafaq = "general" // between ahmer and abyad, the committee's default
	Ahmer   Shafaq = "ahmer"   // the red glow: earlier isha
	Abyad   Shafaq = "abyad"   // the white glow: later isha
)

// Adjustments are minutes added to each time after it is computed.
type Adjustments struct {
	Fajr    int `json:"fajr,omitempty"`
	Sunrise int `json:"sunrise,omitempty"`
	Dhuhr   int `json:"dhuhr,omitempty"`
	Asr     int `json:"asr,omitempty"`
	Maghrib int `json:"maghrib,omitempty"`
	Isha    int `json:"isha,omitempty"`
}

// Params is everything a calculation needs besides the place and the date.
// Start from MethodParams and change what a regional convention changes.
type Params struct {
	Method       Method
	FajrAngle    float64 // degrees below the horizon, (0, MaxAngle]
	IshaAngle    float64 // degrees below the horizon, [0, MaxAngle]; unused when IshaInterval is set
	IshaInterval int     // minutes after maghrib, [0, MaxInterval]; 0 means by IshaAngle
	// RamadanIshaInterval replaces IshaInterval in the month of Ramadan (by
	// the tabular Islamic calendar, which can differ from a sighted or
	// Umm al-Qura month by a day). 0 means IshaInterval all year.
	RamadanIshaInterval int
	MaghribAngle        float64 // degrees below the horizon, [0, MaxMaghribAngle]; 0 means maghrib at sunset
	Madhab              Madhab  // Defaults to Shafi.
	// HighLatitudeRule bounds fajr and isha at high latitudes. Defaults to
	// RecommendedRule(latitude).
	HighLatitudeRule HighLatitudeRule
	Shafaq           Shafaq // Moonsighting Committee only. Defaults to General.
	// MethodAdjustments are the convention's own minutes (Dubai's +3 at
	// dhuhr, asr and maghrib); Adjustments are the caller's, on top. Each is
	// within ±MaxAdjustment.
	MethodAdjustments Adjustments
	Adjustments       Adjustments
	Rounding          Rounding // Defaults to Nearest.
}

// Limits on Params, checked by Validate.
const (
	MaxAngle        = 30.0
	MaxMaghribAngle = 10.0
	MaxInterval     = 240 // minutes
	MaxAdjustment   = 120 // minutes
)

// MethodParams returns the parameters of a convention by its name; the
// empty name is DefaultMethod.
func MethodParams(name string) (Params, error) {
	m := Method(name)
	if name == "" {
		m = DefaultMethod
	}
	p := Params{Method: m, Madhab: Shafi, Rounding: Nearest, Shafaq: General}
	switch m {
	case MuslimWorldLeague:
		p.FajrAngle, p.IshaAngle = 18, 17
		p.MethodAdjustments.Dhuhr = 1
	case Egyptian:
		p.FajrAngle, p.IshaAngle = 19.5, 17.5
		p.MethodAdjustments.Dhuhr = 1
	case Karachi:
		p.FajrAngle, p.IshaAngle = 18, 18
		p.MethodAdjustments.Dhuhr = 1
	case UmmAlQura:
		p.FajrAngle, p.IshaInterval, p.RamadanIshaInterval = 18.5, 90, 120
	case Dubai:
		p.FajrAngle, p.IshaAngle = 18.2, 18.2
		p.MethodAdjustments = Adjustments{Sunrise: -3, Dhuhr: 3, Asr: 3, Maghrib: 3}
	case Qatar:
		p.FajrAngle, p.IshaInterval = 18, 90
	case Kuwait:
		p.FajrAngle, p.IshaAngle = 18, 17.5
	case MoonsightingCommittee:
		p.FajrAngle, p.IshaAngle = 18, 18
		p.MethodAdjustments = Adjustments{Dhuhr: 5, Maghrib: 3}
	case Singapore:
		p.FajrAngle, p.IshaAngle = 20, 18
		p.MethodAdjustments.Dhuhr = 1
		p.Rounding = Up
	case Turkey:
		p.FajrAngle, p.IshaAngle = 18, 17
		p.MethodAdjustments = Adjustments{Sunrise: -7, Dhuhr: 5, Asr: 4, Maghrib: 7}
	case Tehran:
		p.FajrAngle, p.IshaAngle, p.MaghribAngle = 17.7, 14, 4.5
	case NorthAmerica:
		p.FajrAngle, p.IshaAngle = 15, 15
		p.MethodAdjustments.Dhuhr = 1
	case Custom:
		p.FajrAngle, p.IshaAngle = 18, 17
	default:
		return Params{}, &Error{Field: "method", Reason: fmt.Sprintf("unknown method %q; one of %v", name, Methods)}
	}
	return p, nil
}

// Error is a parameter or coordinate that cannot be used, named by Field
// (the snake-case name the API uses).
type Error struct {
	Field  string
	Reason string
}

func (e *Error) Error() string { return e.Field + ": " + e.Reason }

// Validate reports the first parameter out of its range as an *Error.
func (p Params) Validate() error {
	bad := func(field, format string, a ...any) error {
		return &Error{Field: field, Reason: fmt.Sprintf(format, a...)}
	}
	switch {
	case !slices.Contains(Methods, p.Method):
		return bad("method", "unknown method %q; one of %v", p.Method, Methods)
	case !(p.FajrAngle > 0 && p.FajrAngle <= MaxAngle):
		return bad("fajr_angle", "must be above 0 and at most %g degrees", MaxAngle)
	case !(p.IshaAngle >= 0 && p.IshaAngle <= MaxAngle):
		return bad("isha_angle", "must be 0 to %g degrees", MaxAngle)
	case p.IshaInterval < 0 || p.IshaInterval > MaxInterval:
		return bad("isha_interval", "must be 0 to %d minutes", MaxInterval)
	case p.IshaInterval == 0 && p.IshaAngle == 0:
		return bad("isha_angle", "an isha angle or an isha interval is required")
	case p.RamadanIshaInterval < 0 || p.RamadanIshaInterval > MaxInterval:
		return bad("ramadan_isha_interval", "must be 0 to %d minutes", MaxInterval)
	case !(p.MaghribAngle >= 0 && p.MaghribAngle <= MaxMaghribAngle):
		return bad("maghrib_angle", "must be 0 to %g degrees", MaxMaghribAngle)
	case p.Madhab != "" && p.Madhab != Shafi && p.Madhab != Hanafi:
		return bad("madhab", "unknown madhab %q; one of shafi, hanafi", p.Madhab)
	case p.HighLatitudeRule != "" && !slices.Contains(HighLatitudeRules, p.HighLatitudeRule):
		return bad("high_latitude_rule", "unknown rule %q; one of %v", p.HighLatitudeRule, HighLatitudeRules)
	case p.Shafaq != "" && p.Shafaq != General && p.Shafaq != Ahmer && p.Shafaq != Abyad:
		return bad("shafaq", "unknown shafaq %q; one of general, ahmer, abyad", p.Shafaq)
	case p.Rounding != "" && p.Rounding != Nearest && p.Rounding != Up && p.Rounding != None:
		return bad("rounding", "unknown rounding %q; one of nearest, up, none", p.Rounding)
	}
	for _, a := range [...]struct {
		field string
		v     Adjustments
	}{{"method_adjustments", p.MethodAdjustments}, {"adjustments", p.Adjustments}} {
		for i, m := range [...]int{a.v.Fajr, a.v.Sunrise, a.v.Dhuhr, a.v.Asr, a.v.Maghrib, a.v.Isha} {
			if m < -MaxAdjustment || m > MaxAdjustment {
				return bad(a.field+"."+string(Prayers[i]), "must be within ±%d minutes", MaxAdjustment)
			}
		}
	}
	return nil
}

// HighLatitudeRules lists the rules.
var HighLatitudeRules = []HighLatitudeRule{MiddleOfTheNight, SeventhOfTheNight, TwilightAngle}

// ParseMadhab reads a madhab name; the empty name is Shafi.
func ParseMadhab(s string) (Madhab, error) {
	switch Madhab(s) {
	case "", Shafi:
		return Shafi, nil
	case Hanafi:
		return Hanafi, nil
	}
	return "", &Error{Field: "madhab", Reason: fmt.Sprintf("unknown madhab %q; one of shafi, hanafi", s)}
}

// ParseHighLatitudeRule reads a rule name; the empty name stays empty
// (RecommendedRule of the latitude).
func ParseHighLatitudeRule(s string) (HighLatitudeRule, error) {
	r := HighLatitudeRule(s)
	if s == "" || slices.Contains(HighLatitudeRules, r) {
		return r, nil
	}
	return "", &Error{Field: "high_latitude_rule", Reason: fmt.Sprintf("unknown rule %q; one of %v", s, HighLatitudeRules)}
}

// portions are the fractions of the night that bound fajr and isha.
func (p Params) portions(rule HighLatitudeRule) (fajr, isha float64) {
	switch rule {
	case SeventhOfTheNight:
		return 1.0 / 7, 1.0 / 7
	case TwilightAngle:
		return p.FajrAngle / 60, p.IshaAngle / 60
	}
	return 0.5, 0.5
}
