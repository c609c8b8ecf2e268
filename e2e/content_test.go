package e2e

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime"
	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/content"
	"github.com/chime-dev/chime/sender"
)

// pushRecorder is a push channel as the push sender uses package content:
// it merges each chunk's users, composes one message per device, and
// records them instead of sending.
type pushRecorder struct {
	composer *content.Composer
	merger   *content.Merger
	devices  func(user string) []content.Device

	mu  sync.Mutex
	got map[string][]content.Message // by user
}

var _ sender.Sender = (*pushRecorder)(nil)

func (p *pushRecorder) Send(ctx context.Context, b *sender.Batch) (sender.Result, error) {
	key, err := p.composer.ContentKey(&b.Message)
	if err != nil {
		return sender.Result{Failed: len(b.Users)}, nil
	}
	keep, err := p.merger.Filter(ctx, b.Users, key, strconv.FormatInt(b.Occurrence, 10))
	if err != nil {
		return sender.Result{}, err
	}
	failed := 0
	for _, u := range keep {
		var msgs []content.Message
		for _, d := range p.devices(u) {
			m, err := p.composer.Compose(&b.Message, d)
			if err != nil {
				failed++
				break
			}
			msgs = append(msgs, m)
		}
		p.mu.Lock()
		p.got[u] = append(p.got[u], msgs...)
		p.mu.Unlock()
	}
	return sender.Result{Failed: failed}, nil
}

func (p *pushRecorder) messages() map[string][]content.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string][]content.Message, len(p.got))
	for u, m := range p.got {
		out[u] = append([]content.Message(nil), m...)
	}
	return out
}

// A flash sale defined through the API reaches each device filled in,
// in its language, with the configured word masked and the placeholder
// filled; an identical reminder firing at the same instant for the same
// users is merged into it, and a different one is not.
func TestContentEndToEnd(t *testing.T) {
	b := setup(t)
	cfg, err := chime.LoadConfig([]string{
		"REDIS_URL=" + b.env.RedisURL, "MYSQL_DSN=" + b.env.DSN, "CHIME_REDIS_PREFIX=" + b.env.Prefix, "CHIME_QUEUE=" + b.env.Queue,
		"CHIME_LEADER_TTL=2s", "CHIME_PLAN_INTERVAL=5s", "CHIME_PREPARE_LEAD=1s", "CHIME_ACK_TIMEOUT=4s", "CHIME_LEASE_TTL=2s",
		"CHIME_CHUNK_SIZE=7", "CHIME_MERGE_WINDOW=1m",
		"CHIME_MASK_WORDS=judi, قمار", `CHIME_PLACEHOLDERS={"brand":"Toko Murah"}`,
	})
	require.NoError(t, err)
	b.cfg = cfg
	b.startCoordinator("c1")

	composer, merger := chime.NewContent(cfg, b.env.Redis)
	locales := []string{"ar-SA", "en-US", "in_ID"}
	rec := &pushRecorder{composer: composer, merger: merger, got: map[string][]content.Message{},
		devices: func(user string) []content.Device {
			n, _ := strconv.Atoi(user)
			ds := []content.Device{{UserID: user, Platform: "android", Locale: locales[n%3]}}
			if n%5 == 0 {
				ds = append(ds, content.Device{UserID: user, Platform: "ios", Locale: "pt_BR"}) // no Portuguese: Indonesian
			}
			return ds
		}}
	w := chime.NewWorker(cfg, b.env.DB, b.env.Redis, rec, clock.Real{}, b.env.Log)
	b.group.Go(func() error { return w.Run(b.ctx) })

	jakarta := place{"jakarta", "Asia/Jakarta"}
	sale := func(title string, local time.Time) map[string]any {
		return map[string]any{
			"title": title, "body": "Diskon 70% mulai {{.LocalTime}} WIB, bukan judi", "lang": "id",
			"tags": []string{"mask", "placeholders"}, "valid_for": "5m",
			"translations": map[string]any{
				"en": map[string]string{"title": "{{brand}}: flash sale in {{.Location}}", "body": "70% off from {{.LocalTime}}, no judi"},
				"ar": map[string]string{"title": "{{brand}}: تخفيضات", "body": "خصم 70% من الساعة {{.LocalTime}} بلا قمار"},
			},
			"times": []api.ReminderTime{{Location: "jakarta", Zone: "Asia/Jakarta", LocalTime: local.Format("15:04:05")}},
		}
	}
	zone, err := time.LoadLocation("Asia/Jakarta")
	require.NoError(t, err)
	later := time.Now().Add(2 * time.Hour).In(zone)
	for _, key := range []string{"sale", "sale-copy"} {
		require.Equal(t, http.StatusCreated, b.call(http.MethodPut, "/v1/reminders/"+key, sale("{{brand}}: Flash sale {{.Location}}", later), nil))
	}
	require.Equal(t, http.StatusCreated, b.call(http.MethodPut, "/v1/reminders/other", sale("Other sale {{.Location}}", later), nil))
	const users = 30
	for _, key := range []string{"sale", "sale-copy", "other"} {
		b.register(key, 1, users, []place{jakarta})
	}
	fireAt := nextSecond(2 * time.Second).In(zone)
	for _, key := range []string{"sale", "sale-copy"} {
		require.Equal(t, http.StatusOK, b.call(http.MethodPut, "/v1/reminders/"+key, sale("{{brand}}: Flash sale {{.Location}}", fireAt), nil))
	}
	require.Equal(t, http.StatusOK, b.call(http.MethodPut, "/v1/reminders/other", sale("Other sale {{.Location}}", fireAt), nil))
	for _, key := range []string{"sale", "sale-copy", "other"} {
		b.waitDone(key, 1, time.Minute)
	}

	local := fireAt.Format("15:04")
	want := map[string]content.Message{
		"ar": {Title: "Toko Murah: تخفيضات", Body: "خصم 70% من الساعة " + local + " بلا ****", Lang: "ar"},
		"en": {Title: "Toko Murah: flash sale in jakarta", Body: "70% off from " + local + ", no ****", Lang: "en"},
		"id": {Title: "Toko Murah: Flash sale jakarta", Body: "Diskon 70% mulai " + local + " WIB, bukan ****", Lang: "id"},
	}
	got := rec.messages()
	require.Len(t, got, users)
	for u := 1; u <= users; u++ {
		msgs := got[strconv.Itoa(u)]
		var sales, others int
		for _, m := range msgs {
			if m.Data["reminder"] == "other" {
				others++
				continue
			}
			sales++
			w := want[m.Lang]
			w.Data = map[string]string{"reminder": m.Data["reminder"], "occurrence": m.Data["occurrence"]}
			require.Equal(t, w, m, "user %d", u)
			require.Contains(t, []string{"sale", "sale-copy"}, m.Data["reminder"])
		}
		devices := len(rec.devices(strconv.Itoa(u)))
		require.Equal(t, devices, sales, "user %d: the identical sale reminders merged into one message per device", u)
		require.Equal(t, devices, others, "user %d: the other reminder is not merged", u)
		require.Equal(t, []string{"ar", "en", "id"}[u%3], msgs[0].Lang, "user %d's first device", u)
	}
}
