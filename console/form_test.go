package console

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/api"
)

// Injects: a stored reminder with a spread, shown in the editor and sent
// back as its form fields; then the form with the spread cleared.
// Checks: the spread survives an edit in the console (the editor would
// otherwise drop it), and clearing the field sends none.
func TestEditorKeepsTheSpread(t *testing.T) {
	f := formOf(api.Reminder{Key: "sale", Kind: "once", Title: "Sale", ValidFor: "30m0s", Grace: "30m0s", Spread: "15m0s"})
	require.Equal(t, "15m0s", f.Spread)
	v := url.Values{"kind": {"once"}, "title": {"Sale"}, "spread": {" " + f.Spread + " "}}
	require.Equal(t, "15m0s", parseForm(v).input()["spread"])
	v.Set("spread", "")
	_, sent := parseForm(v).input()["spread"]
	require.False(t, sent)
}
