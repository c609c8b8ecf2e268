package scheduler

import (
	"github.com/chime-dev/chime/message"
	"github.com/chime-dev/chime/store"
)

// translations is a reminder's stored translations as a group task carries
// them.
func translations(t store.Texts) map[string]message.Text {
	if len(t) == 0 {
		return nil
	}
	out := make(map[string]message.Text, len(t))
	for k, x := range t {
		out[k] = x
	}
	return out
}
