// Package logging is a delivery channel that writes each batch to a slog
// logger: for development and for dry runs of a new reminder.
package logging

import (
	"context"
	"log/slog"

	"github.com/chime-dev/chime/sender"
)

// Sender logs every batch it is given.
type Sender struct{ log *slog.Logger }

var _ sender.Sender = (*Sender)(nil)

// New returns a sender that logs to log.
func New(log *slog.Logger) *Sender { return &Sender{log: log} }

// Send logs the batch and reports every user as sent.
func (s *Sender) Send(ctx context.Context, b *sender.Batch) (sender.Result, error) {
	s.log.InfoContext(ctx, "deliver", "reminder", b.Reminder, "occurrence", b.Occurrence, "location", b.Location,
		"group", b.Group, "users", len(b.Users), "title", b.Title)
	return sender.Result{}, nil
}
