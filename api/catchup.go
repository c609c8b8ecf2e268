package api

import (
	"context"
	"fmt"
	"time"

	"github.com/chime-dev/chime/localtime"
	"github.com/chime-dev/chime/store"
	"github.com/chime-dev/chime/userzone"
)

// zoneMove is a user moving into a user zone: from the old location's zone
// to the managed location of the new one.
type zoneMove struct {
	user, from, to string
	location       int64
}

// catchUp delivers each moved user the occurrence the move made them miss:
// the new zone's latest occurrence, fired and done before the move, whose
// local date and time was still ahead in the zone left (so the user would
// have been reminded there) and was not reminded in any zone the user was
// in (the move marks). Within its validity the user gets it alone, as a
// one-user occurrence of the same instant that the firer fires as it fires
// a test send; after it, the user is counted expired on it. Either is
// recorded among the user's marks, so that a move back to the old zone
// before its time, or to the new zone again, delivers that local date and
// time no second time. Only moves pay: a read of each new zone's last
// occurrence, and for a missed one a read of the marks and a row or a
// counter.
func (a *API) catchUp(ctx context.Context, rem store.Reminder, moves []zoneMove, now time.Time) error {
	if rem.Paused {
		return nil // a paused reminder sends nothing, and its occurrences are history
	}
	caught := false
	type lastDone struct {
		o  store.Occurrence
		ok bool
	}
	last := map[int64]lastDone{} // by location: a bulk move reads each zone once
	for _, mv := range moves {
		from, err := localtime.LoadZone(mv.from)
		if err != nil {
			continue // the zone left is no longer readable: no local time to compare
		}
		to, err := localtime.LoadZone(mv.to)
		if err != nil {
			continue
		}
		l, seen := last[mv.location]
		if !seen {
			var err error
			if l.o, l.ok, err = store.LastDone(ctx, a.db, rem.ID, mv.location, now); err != nil {
				return fmt.Errorf("find the zone's last occurrence: %w", err)
			}
			last[mv.location] = l
		}
		if !l.ok {
			continue
		}
		o := l.o
		wall := o.FireAt.In(to)
		y, m, d := wall.Date()
		if !localtime.On(y, m, d, localtime.Of(wall.Hour()*3600+wall.Minute()*60+wall.Second()), from).After(now) {
			continue // due in the zone left before the move: reminded there, or not a subscriber then
		}
		done, err := a.moves.RemindedBy(ctx, rem.ID, mv.to, o.FireAt, now, []string{mv.user})
		if err != nil {
			return err
		}
		if done[mv.user] {
			continue
		}
		c := userzone.CatchUp{Reminder: rem.ID, User: mv.user, Zone: mv.to, FireAt: o.FireAt, At: now}
		if !now.Before(o.ExpiresAt) {
			c.Expired = true
			if err := a.moves.RecordCatchUp(ctx, c); err != nil {
				return err
			}
			if err := store.CountExpired(ctx, a.db, o.ID, 1); err != nil {
				return fmt.Errorf("count the moved user expired: %w", err)
			}
			continue
		}
		if _, created, err := store.AddCatchUp(ctx, a.db, o, mv.user); err != nil {
			return fmt.Errorf("add catch-up: %w", err)
		} else if !created {
			continue
		}
		if err := a.moves.RecordCatchUp(ctx, c); err != nil {
			return err
		}
		caught = true
	}
	if caught {
		// The leader looks for due occurrences after an announcement.
		a.announce(ctx, rem.Key)
	}
	return nil
}
