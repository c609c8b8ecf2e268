package scheduler

import (
	"github.com/chime-dev/chime/sender"
	"github.com/chime-dev/chime/store"
)

// translations is a reminder's stored translations as a group task carries
// them.
func translations(t store.Texts) map[string]sender.Text {
	if len(t) == 0 {
		return nil
	}
	out := make(map[string]sender.Text, len(t))
	for k, x := range t {
		out[k] = sender.Text(x)
	}
	return out
}
