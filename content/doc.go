// Package content decides what a reminder says to each device: it fills
// the reminder's templates, picks the language, applies the processing its
// tags turn on, and merges identical reminders for one user.
//
// # Templates
//
// A reminder's title and body, and each of their translations, are
// text/template templates. They are validated when the reminder is stored
// (Validate) and parsed once per batch content on the delivery path
// (Composer.Prepare, cached), never per user. The variables are the fields
// of Vars: .Reminder, .Location, .Zone, .FireAt, .LocalTime, .LocalDate,
// .User, .Platform, .Lang, .Prayer, .Title (body only) and .Event, the JSON object of
// the event that fired the reminder.
//
// Missing values follow one rule: an unknown variable (.Nme) is refused
// when the reminder is stored; a field of .Event that the event does not
// carry is an error at delivery (missingkey=error), which the push sender
// records as a failure for that user with the error as the reason. Optional
// event fields are read with get: {{get .Event "name" "friend"}}. Normalize
// reports the fields a template reads directly to Rules.Event, so the API
// refuses reads that not every event can satisfy.
//
// # Limits
//
// A template is rendered per device, so its cost is bounded twice. When it
// is stored, Normalize refuses the forms that multiply work: {{define}},
// {{block}} and {{template}}, a {{range}} inside another, printf formats
// that are not constant or pad beyond MaxFormatWidth, and methods given
// computed values. When it runs, the message stops at the first write past
// Device.MaxBytes (a *TooLongError), each {{range}} goes over at most
// MaxRange items, and the string functions of one message share MaxWork
// bytes (ErrTooMuchWork).
//
// # Languages
//
// A reminder has a default language (Lang, "en" unless set) in which its
// Title and Body are written, and optional translations keyed by BCP 47
// tags. Each batch content becomes a go-i18n bundle; a device's locale
// ("ar-SA", "pt_BR", "in_ID") is matched against the bundle's languages with
// golang.org/x/text/language, and a locale that matches none, or no locale,
// gets the default language.
//
// # Tags and processors
//
// A reminder's tags turn on processors from a Registry. A processor may
// rewrite the template source before it is parsed (the "placeholders"
// processor fills configured {{name}} placeholders) or each rendered text
// (the "mask" processor masks configured sensitive words: whole words,
// case-insensitive by Unicode case folding, ignoring accents, Arabic vowel
// marks and tatweel). Tags without a processor are plain labels.
//
// # Merging
//
// Merger drops users who were sent identical content within a window
// (CHIME_MERGE_WINDOW): one SET NX GET per user, pipelined per chunk, on a
// key derived from the user and the batch's content key
// (Composer.ContentKey). The value is the occurrence, so a retry of the same
// occurrence is never mistaken for a duplicate.
package content
