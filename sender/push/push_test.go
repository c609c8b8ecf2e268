package push_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/content"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/message"
	"github.com/chime-dev/chime/netguard"
	"github.com/chime-dev/chime/seal"
	"github.com/chime-dev/chime/sender"
	"github.com/chime-dev/chime/sender/apns"
	"github.com/chime-dev/chime/sender/apns/apnstest"
	"github.com/chime-dev/chime/sender/fcm"
	"github.com/chime-dev/chime/sender/fcm/fcmtest"
	"github.com/chime-dev/chime/sender/push"
	"github.com/chime-dev/chime/sender/webhook"
	"github.com/chime-dev/chime/sender/webhook/webhooktest"
	"github.com/chime-dev/chime/signature"
	"github.com/chime-dev/chime/store"
)

// fixture is a push sender on real MySQL and Redis with the three local
// provider servers.
type fixture struct {
	t        testing.TB
	env      *testenv.Env
	apns     *apnstest.Server
	fcm      *fcmtest.Server
	web      *webhooktest.Receiver
	channels map[string]push.Channel
	keyring  *seal.Keyring // seals web devices' secrets, as the API does
	app      int64
	reminder int64
}

// loopback opens the loopback range, where the local servers listen, as
// CHIME_WEB_DEVICE_ALLOW_CIDRS=127.0.0.0/8,::1/128 does.
var loopback = netguard.New([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")})

func newKeyring(t testing.TB, spec string) *seal.Keyring {
	k, err := seal.Parse(spec)
	require.NoError(t, err)
	return k
}

func newKey(t testing.TB, id string) string {
	k, err := seal.NewKey(id)
	require.NoError(t, err)
	return k
}

func setup(t testing.TB) *fixture { return setupWith(t, false) }

// setupWith is setup; with discard the servers keep counts only.
func setupWith(t testing.TB, discard bool) *fixture {
	env := testenv.New(t)
	f := &fixture{t: t, env: env}
	key, pub, err := apnstest.NewKey()
	require.NoError(t, err)
	f.apns = apnstest.New(apnstest.Config{Key: pub, KeyID: "KEY1234567", TeamID: "TEAM123456", Topic: "dev.chime.app", Discard: discard})
	t.Cleanup(f.apns.Close)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(f.apns.CertPEM())
	a, err := apns.New(apns.Config{Key: key, KeyID: "KEY1234567", TeamID: "TEAM123456", Topic: "dev.chime.app", Host: f.apns.URL, RootCAs: roots})
	require.NoError(t, err)
	f.fcm, err = fcmtest.New("chime-test", discard)
	require.NoError(t, err)
	t.Cleanup(f.fcm.Close)
	fc, err := fcm.New(context.Background(), fcm.Config{ProjectID: "chime-test", Credentials: f.fcm.ServiceAccount(), Endpoint: f.fcm.Endpoint()})
	require.NoError(t, err)
	f.web = webhooktest.New(discard)
	t.Cleanup(f.web.Close)
	f.channels = map[string]push.Channel{push.APNs: a, push.FCM: fc, push.Webhook: webhook.NewDevices(webhook.DevicesConfig{Guard: loopback}, env.Log)}
	f.keyring = newKeyring(t, newKey(t, "k1"))

	app := store.App{Name: "test"}
	require.NoError(t, env.DB.Create(&app).Error)
	rem := store.Reminder{AppID: app.ID, Key: "fajr", Title: "Fajr", Body: "Fajr in 10 minutes", Groups: 1, ValidForS: 600}
	require.NoError(t, env.DB.Create(&rem).Error)
	f.app, f.reminder = app.ID, rem.ID
	return f
}

func (f *fixture) sender(cfg push.Config) *push.Sender {
	cfg.Prefix = f.env.Prefix
	if cfg.Keyring == nil {
		cfg.Keyring = f.keyring
	}
	return push.New(cfg, f.env.DB, f.env.Redis, f.channels, nil, nil, clock.Real{}, f.env.Log)
}

// device registers a device of user on platform and returns its token.
func (f *fixture) device(user, id, platform string) string {
	d := store.Device{AppID: f.app, UserID: user, DeviceID: id, Platform: platform}
	switch platform {
	case store.PlatformIOS:
		d.Token = fmt.Sprintf("%064x", fmt.Sprintf("%s/%s", user, id))
	case store.PlatformAndroid:
		d.Token = "fcm:" + user + ":" + id
	case store.PlatformWeb:
		var secret string
		d.Token, secret = f.web.Endpoint(user + "-" + id)
		d.Secret = f.seal(secret, user, id)
	}
	require.NoError(f.t, f.env.DB.Create(&d).Error)
	return d.Token
}

// seal seals a web device's secret for its row, as the API stores it.
func (f *fixture) seal(secret, user, id string) string {
	sealed, err := f.keyring.Seal([]byte(secret), store.DeviceSecretAAD(f.app, user, id))
	require.NoError(f.t, err)
	return sealed
}

func (f *fixture) batch(users ...string) *sender.Batch {
	return &sender.Batch{
		Message:        message.Message{Occurrence: 7, Reminder: "fajr", ReminderID: f.reminder, Title: "Fajr", Body: "Fajr in 10 minutes", Location: "jakarta", Group: 3, ExpiresAt: time.Now().Add(10 * time.Minute)},
		Users:          users,
		IdempotencyKey: "7-3-" + users[0],
	}
}

func (f *fixture) counts() map[string]store.DeliveryCount {
	var rows []store.DeliveryCount
	require.NoError(f.t, f.env.DB.Where("occurrence_id = 7").Find(&rows).Error)
	out := map[string]store.DeliveryCount{}
	for _, r := range rows {
		c := out[r.Channel]
		c.Sent += r.Sent
		c.Failed += r.Failed
		c.Expired += r.Expired
		c.Skipped += r.Skipped
		out[r.Channel] = c
	}
	return out
}

func (f *fixture) disabled() map[string]string {
	var devs []store.Device
	require.NoError(f.t, f.env.DB.Where("disabled_at IS NOT NULL").Find(&devs).Error)
	out := map[string]string{}
	for _, d := range devs {
		out[d.UserID+"/"+d.DeviceID] = d.DisabledReason
	}
	return out
}

// A chunk reaches every enabled device of its users, one message per
// device, on the device's platform; a user without devices is skipped;
// counts per channel are stored for the chunk.
func TestSendReachesEveryDevice(t *testing.T) {
	f := setup(t)
	phone := f.device("alice", "iphone", store.PlatformIOS)
	pad := f.device("alice", "ipad", store.PlatformIOS)
	android := f.device("alice", "pixel", store.PlatformAndroid)
	f.device("alice", "browser", store.PlatformWeb)
	bob := f.device("bob", "galaxy", store.PlatformAndroid)
	// Another app's device of a user with the same ID is not this app's.
	require.NoError(t, f.env.DB.Create(&store.Device{AppID: f.app + 100, UserID: "bob", DeviceID: "x", Platform: "android", Token: "other-app"}).Error)

	res, err := f.sender(push.Config{}).Send(context.Background(), f.batch("alice", "bob", "carol"))
	require.NoError(t, err)
	require.Equal(t, 1, res.Failed, "carol has no device")
	require.Equal(t, 1, res.Skipped)
	require.Equal(t, map[string]sender.Counts{"apns": {Sent: 2}, "fcm": {Sent: 2}, "webhook": {Sent: 1}, "none": {Skipped: 1}}, res.Channels)

	for _, tok := range []string{phone, pad} {
		p := f.apns.Pushes(tok)
		require.Len(t, p, 1)
		require.Equal(t, "Fajr in 10 minutes", p[0].Payload["aps"].(map[string]any)["alert"].(map[string]any)["body"])
	}
	require.Len(t, f.fcm.Messages(android), 1)
	require.Len(t, f.fcm.Messages(bob), 1)
	require.Empty(t, f.fcm.Messages("other-app"))
	ev := f.web.Events("alice-browser")
	require.Len(t, ev, 1)
	require.Equal(t, "Fajr", ev[0].Data.Title)
	require.Equal(t, map[string]store.DeliveryCount{"apns": {Sent: 2}, "fcm": {Sent: 2}, "webhook": {Sent: 1}, "none": {Skipped: 1}}, f.counts())
}

// Injects: a chunk of two users with devices, one of whom opted out of
// push. Checks: only the other's device is sent to, and the opt-out is
// neither failed nor counted as a user without a device, but as opted_out.
func TestSendLeavesOutPushOptOuts(t *testing.T) {
	f := setup(t)
	alice := f.device("alice", "pixel", store.PlatformAndroid)
	bob := f.device("bob", "galaxy", store.PlatformAndroid)
	b := f.batch("alice", "bob")
	b.Exclude = map[string][]string{"alice": {sender.ChannelPush}}
	res, err := f.sender(push.Config{}).Send(context.Background(), b)
	require.NoError(t, err)
	require.Zero(t, res.Failed)
	require.Equal(t, map[string]sender.Counts{"fcm": {Sent: 1}, push.OptedOut: {Skipped: 1}}, res.Channels)
	require.Empty(t, f.fcm.Messages(alice))
	require.Len(t, f.fcm.Messages(bob), 1)
}

// Web devices' secrets are stored sealed and opened per send; the receiver
// verifies each signature with the plaintext secret. Injected: a device
// stored before sealing (plaintext, still delivered), a sealed value copied
// from another device's row, and one sealed under a key the worker does not
// have. Checked: those two fail with a reason that names no key or value,
// nothing reaches their endpoints, and the other devices are delivered.
func TestSendOpensSealedSecrets(t *testing.T) {
	f := setup(t)
	f.device("sealed", "browser", store.PlatformWeb)
	url, secret := f.web.Endpoint("legacy-browser")
	require.NoError(t, f.env.DB.Create(&store.Device{AppID: f.app, UserID: "legacy", DeviceID: "browser", Platform: store.PlatformWeb, Token: url, Secret: secret}).Error)
	url, _ = f.web.Endpoint("copied-browser")
	var original store.Device
	require.NoError(t, f.env.DB.Where("user_id = ?", "sealed").First(&original).Error)
	require.NoError(t, f.env.DB.Create(&store.Device{AppID: f.app, UserID: "copied", DeviceID: "browser", Platform: store.PlatformWeb, Token: url, Secret: original.Secret}).Error)
	url, secret = f.web.Endpoint("rotated-browser")
	other, err := newKeyring(t, newKey(t, "gone")).Seal([]byte(secret), store.DeviceSecretAAD(f.app, "rotated", "browser"))
	require.NoError(t, err)
	require.NoError(t, f.env.DB.Create(&store.Device{AppID: f.app, UserID: "rotated", DeviceID: "browser", Platform: store.PlatformWeb, Token: url, Secret: other}).Error)

	res, err := f.sender(push.Config{}).Send(context.Background(), f.batch("copied", "legacy", "rotated", "sealed"))
	require.NoError(t, err)
	require.Len(t, f.web.Events("sealed-browser"), 1)
	require.Len(t, f.web.Events("legacy-browser"), 1)
	accepted, unverified := f.web.Counts()
	require.Equal(t, 2, accepted)
	require.Zero(t, unverified, "nothing was sent with a wrong secret")
	require.Equal(t, []sender.Failure{
		{User: "copied", Device: "browser", Channel: push.Webhook, Reason: "signing secret does not open"},
		{User: "rotated", Device: "browser", Channel: push.Webhook, Reason: "signing secret does not open"},
	}, res.Failures)
	require.Equal(t, map[string]store.DeliveryCount{"webhook": {Sent: 2, Failed: 2}}, f.counts())
}

// Faults injected: APNs 410 Unregistered and 400 BadDeviceToken, FCM
// UNREGISTERED and INVALID_ARGUMENT, webhook 410 Gone. Checked: those
// devices are disabled with the provider's reason and recorded as failures
// per user, the user's other devices still get the message, and the next
// fire does not send to the disabled devices again.
func TestInvalidTokensDisableDevices(t *testing.T) {
	f := setup(t)
	gone := f.device("u1", "old-iphone", store.PlatformIOS)
	f.device("u1", "new-iphone", store.PlatformIOS)
	bad := f.device("u2", "iphone", store.PlatformIOS)
	unreg := f.device("u3", "pixel", store.PlatformAndroid)
	invalid := f.device("u4", "pixel", store.PlatformAndroid)
	f.device("u5", "browser", store.PlatformWeb)
	f.apns.Unregister(gone)
	f.apns.Fail(bad, apnstest.BadDeviceToken)
	f.fcm.Unregister(unreg)
	f.fcm.Fail(invalid, fcmtest.InvalidArgument)
	f.web.Gone("u5-browser")

	s := f.sender(push.Config{})
	res, err := s.Send(context.Background(), f.batch("u1", "u2", "u3", "u4", "u5"))
	require.NoError(t, err)
	require.Equal(t, 4, res.Failed, "u1 was reached on the new phone")
	require.Equal(t, map[string]string{
		"u1/old-iphone": "Unregistered", "u2/iphone": "BadDeviceToken", "u3/pixel": "UNREGISTERED",
		"u4/pixel": "INVALID_ARGUMENT", "u5/browser": "http 410",
	}, f.disabled())
	var fails []store.DeliveryFailure
	require.NoError(t, f.env.DB.Order("user_id").Find(&fails).Error)
	require.Len(t, fails, 5)
	require.Equal(t, "u1", fails[0].UserID)
	require.Equal(t, "old-iphone", fails[0].DeviceID)
	require.Equal(t, "apns", fails[0].Channel)
	require.Equal(t, "Unregistered", fails[0].Reason)

	// The next occurrence skips the disabled devices.
	_, rejectedBefore := f.apns.Counts()
	b := f.batch("u1", "u2", "u3", "u4", "u5")
	b.Occurrence, b.IdempotencyKey = 8, "8-3-u1"
	res, err = s.Send(context.Background(), b)
	require.NoError(t, err)
	require.Equal(t, 4, res.Skipped)
	_, rejectedAfter := f.apns.Counts()
	require.Equal(t, rejectedBefore, rejectedAfter, "no request for a disabled device")
	_, fcmRejected, _ := f.fcm.Counts()
	require.Equal(t, 2, fcmRejected)
}

// Faults injected: APNs 429 then 503, FCM 429 RESOURCE_EXHAUSTED with
// Retry-After: 1 and 500 INTERNAL, webhook 503 then 429 with Retry-After.
// Checked: every device ends up sent exactly once (devices that succeeded
// on the first attempt are not sent again by the retries), and FCM's
// Retry-After was waited.
func TestTransientRefusalsAreRetried(t *testing.T) {
	f := setup(t)
	a1 := f.device("u1", "iphone", store.PlatformIOS)
	a2 := f.device("u2", "iphone", store.PlatformIOS)
	g1 := f.device("u3", "pixel", store.PlatformAndroid)
	g2 := f.device("u4", "pixel", store.PlatformAndroid)
	f.device("u5", "browser", store.PlatformWeb)
	f.apns.Fail(a1, apnstest.TooManyRequests, apnstest.ServiceUnavailable)
	f.fcm.Fail(g1, fcmtest.QuotaExceeded, fcmtest.Internal)
	f.web.Fail("u5-browser", webhooktest.Fault{Status: 503}, webhooktest.Fault{Status: 429, RetryAfter: 1})

	start := time.Now()
	res, err := f.sender(push.Config{RetryInitial: 50 * time.Millisecond}).Send(context.Background(), f.batch("u1", "u2", "u3", "u4", "u5"))
	require.NoError(t, err)
	require.Zero(t, res.Failed)
	require.GreaterOrEqual(t, time.Since(start), time.Second, "Retry-After: 1 was honoured")
	for _, tok := range []string{a1, a2} {
		require.Len(t, f.apns.Pushes(tok), 1, tok)
	}
	for _, tok := range []string{g1, g2} {
		require.Len(t, f.fcm.Messages(tok), 1, tok)
	}
	require.Len(t, f.web.Events("u5-browser"), 1)
	accepted, rejected := f.apns.Counts()
	require.Equal(t, 2, accepted)
	require.Equal(t, 2, rejected)
	require.Equal(t, map[string]store.DeliveryCount{"apns": {Sent: 2}, "fcm": {Sent: 2}, "webhook": {Sent: 1}}, f.counts())
}

// Fault injected: one APNs device answers 503 more often than one Send
// retries. Checked: Send returns an error (the worker will retry the
// chunk), and the retry of the same chunk sends only to that device, not
// again to the devices the first attempt reached; the stored counts are the
// complete chunk's.
func TestChunkRetrySkipsDevicesAlreadyReached(t *testing.T) {
	f := setup(t)
	stuck := f.device("u1", "iphone", store.PlatformIOS)
	fine := f.device("u2", "iphone", store.PlatformIOS)
	android := f.device("u3", "pixel", store.PlatformAndroid)
	for range 6 {
		f.apns.Fail(stuck, apnstest.ServiceUnavailable)
	}
	s := f.sender(push.Config{RetryFor: 300 * time.Millisecond, RetryInitial: 50 * time.Millisecond})
	b := f.batch("u1", "u2", "u3")
	_, err := s.Send(context.Background(), b)
	require.ErrorContains(t, err, "still refused")
	require.Empty(t, f.counts(), "counts wait for the complete chunk")

	// The provider recovers; the worker retries the chunk.
	var res sender.Result
	testenv.WaitUntil(t, 30*time.Second, "the chunk's retry to complete", func() bool {
		res, err = s.Send(context.Background(), b)
		return err == nil
	})
	require.Zero(t, res.Failed)
	require.Len(t, f.apns.Pushes(stuck), 1)
	require.Len(t, f.apns.Pushes(fine), 1, "not sent again")
	require.Len(t, f.fcm.Messages(android), 1, "not sent again")
	require.Equal(t, map[string]store.DeliveryCount{"apns": {Sent: 2}, "fcm": {Sent: 1}}, f.counts())
}

// Two senders (two workers) share FCM's rate limit in Redis: 3 messages a
// minute. With a validity window of two seconds, the first chunk takes the
// three tokens and the second chunk's messages are recorded as expired, not
// sent late.
func TestRateLimitIsSharedAndExpiresWhatWouldBeLate(t *testing.T) {
	f := setup(t)
	for i := range 6 {
		f.device(fmt.Sprintf("u%d", i), "pixel", store.PlatformAndroid)
	}
	cfg := push.Config{Limits: map[string]redis_rate.Limit{push.FCM: {Rate: 3, Burst: 3, Period: time.Minute}}}
	w1, w2 := f.sender(cfg), f.sender(cfg)
	b1 := f.batch("u0", "u1", "u2")
	b1.ExpiresAt = time.Now().Add(2 * time.Second)
	res, err := w1.Send(context.Background(), b1)
	require.NoError(t, err)
	require.Zero(t, res.Failed)
	b2 := f.batch("u3", "u4", "u5")
	b2.ExpiresAt = b1.ExpiresAt
	res, err = w2.Send(context.Background(), b2)
	require.NoError(t, err)
	require.Equal(t, 3, res.Expired)
	require.Equal(t, 3, res.Failed)
	accepted, _, _ := f.fcm.Counts()
	require.Equal(t, 3, accepted)
	require.Equal(t, map[string]store.DeliveryCount{"fcm": {Sent: 3, Expired: 3}}, f.counts())
	var fails []store.DeliveryFailure
	require.NoError(t, f.env.DB.Find(&fails).Error)
	require.Len(t, fails, 3)
	require.Contains(t, fails[0].Reason, "expired: rate limit of fcm")
}

// BenchmarkSend measures deliveries per second through the whole push
// sender, per channel: each operation sends 10 chunks of 100 users (one
// device each) at once, as a worker with concurrent groups does, with the
// device query, the Redis reads, the shared rate limiter (FCM's default
// quota) and the status transaction of every chunk, to the local servers.
func BenchmarkSend(b *testing.B) {
	for _, platform := range []string{store.PlatformIOS, store.PlatformAndroid, store.PlatformWeb} {
		b.Run(push.ChannelOf(platform), func(b *testing.B) {
			f := setupWith(b, true)
			const chunks, size = 10, 100
			batches := make([]*sender.Batch, chunks)
			devs := make([]store.Device, 0, chunks*size)
			for c := range chunks {
				users := make([]string, size)
				for i := range users {
					users[i] = fmt.Sprintf("u%02d%03d", c, i)
					d := store.Device{AppID: f.app, UserID: users[i], DeviceID: "d", Platform: platform}
					switch platform {
					case store.PlatformIOS:
						d.Token = fmt.Sprintf("%064x", c*size+i)
					case store.PlatformAndroid:
						d.Token = "fcm-" + users[i]
					case store.PlatformWeb:
						var secret string
						d.Token, secret = f.web.Endpoint(fmt.Sprint(i % 10))
						d.Secret = f.seal(secret, users[i], "d")
					}
					devs = append(devs, d)
				}
				batches[c] = f.batch(users...)
			}
			require.NoError(b, f.env.DB.CreateInBatches(&devs, 500).Error)
			s := f.sender(push.Config{Limits: map[string]redis_rate.Limit{push.FCM: redis_rate.PerMinute(600000)}})
			ctx := context.Background()
			b.ResetTimer()
			start, cpu := time.Now(), testenv.CPUTime()
			for range b.N {
				var g errgroup.Group
				for _, bt := range batches {
					g.Go(func() error {
						res, err := s.Send(ctx, bt)
						if err == nil && res.Failed > 0 {
							err = fmt.Errorf("%d failed: %v", res.Failed, res.Failures[0])
						}
						return err
					})
				}
				require.NoError(b, g.Wait())
			}
			b.ReportMetric(float64(b.N*chunks*size)/time.Since(start).Seconds(), "deliveries/s")
			b.ReportMetric(float64(b.N*chunks*size)/(testenv.CPUTime()-cpu).Seconds(), "deliveries/cpu-s")
		})
	}
}

// A reminder key may have 100 characters, APNs takes a collapse ID of 64
// bytes at most (the local server answers BadCollapseId beyond): long keys
// are hashed, and the message goes out.
func TestLongReminderKeyIsSent(t *testing.T) {
	f := setup(t)
	tok := f.device("u1", "iphone", store.PlatformIOS)
	b := f.batch("u1")
	b.Reminder = strings.Repeat("k", 100)
	res, err := f.sender(push.Config{}).Send(context.Background(), b)
	require.NoError(t, err)
	require.Zero(t, res.Failed, "%v", res.Failures)
	require.Len(t, f.apns.Pushes(tok), 1)
}

// composer composes with package content, as the root package wires it.
type composer struct{ c *content.Composer }

func (a composer) Compose(b *sender.Batch, d push.Device, maxBytes int) (push.Message, error) {
	m, err := a.c.Compose(&b.Message, content.Device{UserID: d.UserID, Platform: d.Platform, Locale: d.Locale, MaxBytes: maxBytes})
	return push.Message{Title: m.Title, Body: m.Body, Data: m.Data}, err
}

// Injected: a body that renders to 5,006 bytes from an event field, and a
// {{range}} of 100 items writing that field 100 times (50 MB if rendered in
// full) in the Indonesian translation; an Arabic translation that stays
// short. Checked: the iPhone and the Android phone in English and the
// iPhone in Indonesian fail with "message exceeds 4096 bytes" and reach no
// provider; the iPhone in Arabic and the web device in English (16 KiB)
// get their messages; Send succeeds and counts each channel.
func TestOverLimitMessageFailsOnlyItsDevice(t *testing.T) {
	f := setup(t)
	alice := f.device("alice", "iphone", store.PlatformIOS)
	dave := f.device("dave", "pixel", store.PlatformAndroid)
	bob := f.device("bob", "iphone", store.PlatformIOS)
	eve := f.device("eve", "iphone", store.PlatformIOS)
	f.device("carol", "browser", store.PlatformWeb)
	for user, locale := range map[string]string{"bob": "ar-SA", "eve": "id-ID"} {
		require.NoError(t, f.env.DB.Model(&store.Device{}).Where("user_id = ?", user).Update("locale", locale).Error)
	}
	s := push.New(push.Config{Prefix: f.env.Prefix, Keyring: f.keyring}, f.env.DB, f.env.Redis, f.channels,
		composer{content.NewComposer(content.Config{})}, nil, clock.Real{}, f.env.Log)
	b := f.batch("alice", "bob", "carol", "dave", "eve")
	b.Zone, b.FireAt, b.Lang = "Asia/Jakarta", time.Now(), "en"
	b.Body = `Fajr {{get .Event "note" ""}}`
	b.Translations = map[string]message.Text{
		"ar": {Title: "الفجر", Body: "حان موعد صلاة الفجر"},
		"id": {Title: "Subuh", Body: `{{range .Event.items}}` + strings.Repeat(`{{$.Event.note}}`, 100) + `{{end}}`},
	}
	data, err := json.Marshal(map[string]any{"note": strings.Repeat("n", 5001), "items": make([]int, 100)})
	require.NoError(t, err)
	b.Data = data

	res, err := s.Send(context.Background(), b)
	require.NoError(t, err)
	require.Equal(t, map[string]sender.Counts{"apns": {Sent: 1, Failed: 2}, "fcm": {Failed: 1}, "webhook": {Sent: 1}}, res.Channels)
	require.ElementsMatch(t, []string{"alice", "dave", "eve"}, res.FailedUsers)
	reasons := map[string]string{}
	for _, fl := range res.Failures {
		reasons[fl.User] = fl.Reason
	}
	require.Equal(t, map[string]string{
		"alice": "compose: content: body: message exceeds 4096 bytes",
		"dave":  "compose: content: body: message exceeds 4096 bytes",
		"eve":   "compose: content: body: message exceeds 4096 bytes",
	}, reasons)
	require.Empty(t, f.apns.Pushes(alice))
	require.Empty(t, f.apns.Pushes(eve))
	require.Empty(t, f.fcm.Messages(dave))
	p := f.apns.Pushes(bob)
	require.Len(t, p, 1)
	require.Equal(t, "حان موعد صلاة الفجر", p[0].Payload["aps"].(map[string]any)["alert"].(map[string]any)["body"])
	ev := f.web.Events("carol-browser")
	require.Len(t, ev, 1)
	require.Len(t, ev[0].Data.Body, 5006)
}

// Injected: a web device whose endpoint hangs (never answers;
// webhooktest.Staller), a device timeout of 3s, and a validity window that
// ends 500ms after the send starts. Checked against the endpoint's record:
// the one request arrived inside the window and was given up when the
// window ended, not at the 3s timeout (before, it stayed in flight past the
// window and Send returned an error for the chunk to be retried); the
// device is counted and recorded as expired, with a reason that says so.
func TestValidityWindowEndsARequestInFlight(t *testing.T) {
	f := setup(t)
	st := webhooktest.NewStaller()
	t.Cleanup(st.Close)
	require.NoError(t, f.env.DB.Create(&store.Device{AppID: f.app, UserID: "u1", DeviceID: "browser", Platform: store.PlatformWeb,
		Token: st.URL(), Secret: signature.NewSecret()}).Error)
	const timeout = 3 * time.Second
	f.channels[push.Webhook] = webhook.NewDevices(webhook.DevicesConfig{Timeout: timeout, Guard: loopback}, f.env.Log)

	b := f.batch("u1")
	b.ExpiresAt = time.Now().Add(500 * time.Millisecond)
	res, err := f.sender(push.Config{}).Send(context.Background(), b)
	require.NoError(t, err)
	require.Equal(t, 1, res.Expired)
	require.Equal(t, 1, res.Failed)
	var arrived, gaveUp []time.Time
	testenv.WaitUntil(t, 5*time.Second, "the endpoint to see the client give up", func() bool {
		arrived, gaveUp = st.Times()
		return len(gaveUp) == len(arrived)
	})
	require.Len(t, arrived, 1)
	require.True(t, arrived[0].Before(b.ExpiresAt), "the request arrived inside the window")
	require.False(t, gaveUp[0].Before(b.ExpiresAt), "the request ran until the window ended")
	require.True(t, gaveUp[0].Before(arrived[0].Add(timeout)), "the window, not the device timeout, ended it")
	require.Equal(t, map[string]store.DeliveryCount{"webhook": {Expired: 1}}, f.counts())
	var fails []store.DeliveryFailure
	require.NoError(t, f.env.DB.Find(&fails).Error)
	require.Len(t, fails, 1)
	require.Equal(t, "expired: validity window passed before webhook answered", fails[0].Reason)
}

// Injected: a web device's endpoint answers 503 once, with a first backoff
// of at least 500ms and a validity window of 300ms. Checked: no retry is
// made (it would start after the window), and the device is counted and
// recorded as expired instead of the chunk failing for a later retry.
func TestNoRetryStartsAfterTheValidityWindow(t *testing.T) {
	f := setup(t)
	f.device("u1", "browser", store.PlatformWeb)
	f.web.Fail("u1-browser", webhooktest.Fault{Status: 503})

	b := f.batch("u1")
	b.ExpiresAt = time.Now().Add(300 * time.Millisecond)
	res, err := f.sender(push.Config{RetryInitial: time.Second}).Send(context.Background(), b)
	require.NoError(t, err)
	require.Equal(t, 1, res.Expired)
	require.Empty(t, f.web.Events("u1-browser"), "not sent by a late retry")
	require.Equal(t, map[string]store.DeliveryCount{"webhook": {Expired: 1}}, f.counts())
	var fails []store.DeliveryFailure
	require.NoError(t, f.env.DB.Find(&fails).Error)
	require.Len(t, fails, 1)
	require.Equal(t, "expired: validity window passed while retrying", fails[0].Reason)
}
