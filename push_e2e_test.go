package chime_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime"
	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/grouping"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/seal"
	"github.com/chime-dev/chime/sender/apns/apnstest"
	"github.com/chime-dev/chime/sender/fcm/fcmtest"
	"github.com/chime-dev/chime/sender/webhook/webhooktest"
	"github.com/chime-dev/chime/store"
)

// pushServers are the local APNs, FCM and webhook servers a push fire
// reaches.
type pushServers struct {
	apns *apnstest.Server
	fcm  *fcmtest.Server
	web  *webhooktest.Receiver
}

// usePush starts the local provider servers and configures the bundle's
// workers for CHIME_SENDER=push against them, through files as in
// production: the .p8 key, the APNs server's certificate, the service
// account key.
func (b *bundle) usePush() pushServers {
	t := b.t
	dir := t.TempDir()
	key, pub, err := apnstest.NewKey()
	require.NoError(t, err)
	s := pushServers{apns: apnstest.New(apnstest.Config{Key: pub, KeyID: "ABC123DEFG", TeamID: "DEF123GHIJ", Topic: "dev.chime.app"})}
	t.Cleanup(s.apns.Close)
	s.fcm, err = fcmtest.New("chime-e2e", false)
	require.NoError(t, err)
	t.Cleanup(s.fcm.Close)
	s.web = webhooktest.New(false)
	t.Cleanup(s.web.Close)
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, data, 0o600))
		return p
	}
	b.cfg.Sender = "push"
	b.cfg.Push = chime.PushConfig{
		APNSKeyFile: write("AuthKey.p8", key), APNSKeyID: "ABC123DEFG", APNSTeamID: "DEF123GHIJ", APNSTopic: "dev.chime.app",
		APNSHost: s.apns.URL, APNSCAFile: write("apns-ca.pem", s.apns.CertPEM()), APNSConns: 2,
		FCMProject: "chime-e2e", FCMCredentialsFile: write("service-account.json", s.fcm.ServiceAccount()), FCMEndpoint: s.fcm.Endpoint(),
		FCMRate: 600000, RetryFor: 20 * time.Second,
		// The local webhook receiver is on loopback, which web device
		// endpoints may not use unless the operator opens it.
		WebDeviceAllowCIDRs: "127.0.0.0/8,::1/128",
	}
	// Web devices' secrets are stored sealed.
	b.cfg.SecretKeys, err = seal.NewKey("e2e")
	require.NoError(t, err)
	return s
}

func (b *bundle) putDevice(user, device string, body map[string]any) {
	b.t.Helper()
	code := b.call(http.MethodPut, "/v1/users/"+user+"/devices/"+device, body, nil)
	require.Equal(b.t, http.StatusCreated, code)
}

// A fire reaches every enabled device of every subscriber through the local
// APNs (HTTP/2, JWT), FCM (v1 API, OAuth) and webhook (Standard Webhooks
// signatures) servers: users with several devices get one push per device.
//
// Faults injected: tokens answered 410 Unregistered (APNs), UNREGISTERED
// (FCM) and 410 Gone (webhook); transient 429 then 503 (APNs),
// RESOURCE_EXHAUSTED with Retry-After then UNAVAILABLE (FCM), 503 then 429
// (webhook). Checked: the unregistered devices are disabled with the
// provider's reason and listed as failures of the occurrence; the transient
// ones end delivered exactly once; per-channel counts are recorded; a second
// fire sends nothing to the disabled devices and everything else again.
func TestPushFireReachesDevicesThroughLocalProviders(t *testing.T) {
	b := setup(t)
	srv := b.usePush()
	b.startCoordinator("c1")
	b.startWorker("w1")
	b.startWorker("w2")

	places := []place{{"mecca", "Asia/Riyadh"}, {"jakarta", "Asia/Jakarta"}}
	const users = 120
	b.putReminder("fajr", 4, time.Now().Add(2*time.Hour), places)
	b.register("fajr", 1000, users, places)

	// Users 1000..1119: every 4th has an iPhone and an Android phone, the
	// next an Android phone, the next a web endpoint, the next nothing.
	ios, android, web := map[string]string{}, map[string]string{}, map[string]string{}
	for i := range users {
		u := strconv.Itoa(1000 + i)
		switch i % 4 {
		case 0:
			ios[u] = fmt.Sprintf("%064x", 1000+i)
			b.putDevice(u, "iphone", map[string]any{"platform": "ios", "token": ios[u], "locale": "ar"})
			android[u] = "fcm-" + u + "-tablet"
			b.putDevice(u, "tablet", map[string]any{"platform": "android", "token": android[u]})
		case 1:
			android[u] = "fcm-" + u
			b.putDevice(u, "pixel", map[string]any{"platform": "android", "token": android[u]})
		case 2:
			url, secret := srv.web.Endpoint(u)
			web[u] = url
			b.putDevice(u, "browser", map[string]any{"platform": "web", "token": url, "secret": secret})
		}
	}
	srv.apns.Unregister(ios["1000"])
	srv.apns.Fail(ios["1004"], apnstest.TooManyRequests, apnstest.ServiceUnavailable)
	srv.fcm.Unregister(android["1001"])
	srv.fcm.Fail(android["1005"], fcmtest.QuotaExceeded, fcmtest.Unavailable, fcmtest.Unavailable)
	srv.web.Gone("1002")
	srv.web.Fail("1006", webhooktest.Fault{Status: 503}, webhooktest.Fault{Status: 429, RetryAfter: 1})

	fireAt := nextSecond(2 * time.Second)
	b.putReminder("fajr", 4, fireAt, places)
	occ := at(b.waitDone("fajr", len(places), time.Minute), fireAt)
	require.Len(t, occ, len(places))

	gone := map[string]bool{ios["1000"]: true, android["1001"]: true, web["1002"]: true}
	for u, tok := range ios {
		if !gone[tok] {
			require.Len(t, srv.apns.Pushes(tok), 1, "user %s's iPhone", u)
		}
	}
	for u, tok := range android {
		if !gone[tok] {
			require.Len(t, srv.fcm.Messages(tok), 1, "user %s's Android device", u)
		}
	}
	for u := range web {
		if u != "1002" {
			require.Len(t, srv.web.Events(u), 1, "user %s's web endpoint", u)
		}
	}
	p := srv.apns.Pushes(ios["1004"])[0]
	require.Equal(t, "Test fajr", p.Payload["aps"].(map[string]any)["alert"].(map[string]any)["title"])
	require.Equal(t, "Test fajr", srv.fcm.Messages(android["1005"])[0].Notification["title"])
	require.Equal(t, "Test fajr", srv.web.Events("1006")[0].Data.Title)

	// User 1000 still had the tablet; 1001 and 1002 had nothing else, and
	// a quarter of the users have no device at all.
	var delivered, failed int64
	for _, o := range occ {
		delivered += o.Delivered
		failed += o.Failed
	}
	require.EqualValues(t, users-users/4-2, delivered)
	require.EqualValues(t, users/4+2, failed)

	// Per-channel counts and failures, through the API.
	sum := map[string]api.ChannelCounts{}
	var fails []api.DeliveryFailure
	for _, o := range occ {
		var ch struct{ Channels []api.ChannelCounts }
		require.Equal(t, 200, b.call(http.MethodGet, fmt.Sprintf("/v1/occurrences/%d/channels", o.ID), nil, &ch))
		for _, c := range ch.Channels {
			s := sum[c.Channel]
			s.Sent, s.Failed, s.Expired, s.Skipped = s.Sent+c.Sent, s.Failed+c.Failed, s.Expired+c.Expired, s.Skipped+c.Skipped
			sum[c.Channel] = s
		}
		var f struct{ Failures []api.DeliveryFailure }
		require.Equal(t, 200, b.call(http.MethodGet, fmt.Sprintf("/v1/occurrences/%d/failures", o.ID), nil, &f))
		fails = append(fails, f.Failures...)
	}
	require.Equal(t, api.ChannelCounts{Sent: int64(len(ios) - 1), Failed: 1}, strip(sum["apns"]))
	require.Equal(t, api.ChannelCounts{Sent: int64(len(android) - 1), Failed: 1}, strip(sum["fcm"]))
	require.Equal(t, api.ChannelCounts{Sent: int64(len(web) - 1), Failed: 1}, strip(sum["webhook"]))
	require.Equal(t, api.ChannelCounts{Skipped: users / 4}, strip(sum["none"]))
	reasons := map[string]string{}
	for _, f := range fails {
		reasons[f.UserID+"/"+f.DeviceID] = f.Reason
	}
	require.Equal(t, map[string]string{"1000/iphone": "Unregistered", "1001/pixel": "UNREGISTERED", "1002/browser": "http 410"}, reasons)

	// The devices are disabled, as the API shows.
	for u, dev := range map[string]string{"1000": "iphone", "1001": "pixel", "1002": "browser"} {
		var list struct{ Devices []api.Device }
		require.Equal(t, 200, b.call(http.MethodGet, "/v1/users/"+u+"/devices", nil, &list))
		for _, d := range list.Devices {
			require.Equal(t, d.DeviceID != dev, d.Enabled, "%s/%s", u, d.DeviceID)
		}
	}

	// The next fire leaves the disabled devices alone.
	_, apnsRejected := srv.apns.Counts()
	_, fcmRejected, _ := srv.fcm.Counts()
	fireAt = nextSecond(2 * time.Second)
	b.putReminder("fajr", 4, fireAt, places)
	occ = at(b.waitDone("fajr", 2*len(places), time.Minute), fireAt)
	require.Len(t, occ, len(places))
	_, apnsRejected2 := srv.apns.Counts()
	_, fcmRejected2, _ := srv.fcm.Counts()
	require.Equal(t, apnsRejected, apnsRejected2, "no request for the unregistered iPhone")
	require.Equal(t, fcmRejected, fcmRejected2, "no request for the unregistered Android phone")
	require.Len(t, srv.apns.Pushes(ios["1004"]), 2)
	require.Len(t, srv.fcm.Messages(android["1000"]), 2)
	require.Len(t, srv.web.Events("1006"), 2)
	_, unverified := srv.web.Counts()
	require.Zero(t, unverified, "every webhook verified with its endpoint's secret")
}

func strip(c api.ChannelCounts) api.ChannelCounts { c.Channel = ""; return c }

// A tenant's web device endpoint that names the operator's own host: the
// coordinator and worker run without an allow-list (as in production), the
// receiver listens on 127.0.0.1. Injected: an endpoint http://localhost:<the
// receiver's port>/..., a name the API cannot refuse, which resolves to
// loopback. Checked: the API stored it; at send time the worker refuses the
// address it resolved to, the receiver gets no request, and the failure the
// tenant reads (GET /v1/occurrences/{id}/failures) is the generic "endpoint
// refused: address not allowed" without the dial error or the address.
func TestPushWebDeviceOnOperatorNetworkIsRefusedAtSendTime(t *testing.T) {
	b := setup(t)
	srv := b.usePush()
	b.cfg.Push.WebDeviceAllowCIDRs = ""
	b.startCoordinator("c1")
	b.startWorker("w1")

	places := []place{{"cairo", "Africa/Cairo"}}
	b.putReminder("asr", 1, time.Now().Add(2*time.Hour), places)
	b.register("asr", 1, 1, places)
	url, secret := srv.web.Endpoint("1")
	url = strings.Replace(url, "127.0.0.1", "localhost", 1)
	b.putDevice("1", "browser", map[string]any{"platform": "web", "token": url, "secret": secret})

	fireAt := nextSecond(2 * time.Second)
	b.putReminder("asr", 1, fireAt, places)
	occ := at(b.waitDone("asr", 1, time.Minute), fireAt)
	require.Len(t, occ, 1)
	require.EqualValues(t, 1, occ[0].Failed)
	accepted, unverified := srv.web.Counts()
	require.Zero(t, accepted+unverified, "the receiver on loopback got no request")
	var f struct{ Failures []api.DeliveryFailure }
	require.Equal(t, 200, b.call(http.MethodGet, fmt.Sprintf("/v1/occurrences/%d/failures", occ[0].ID), nil, &f))
	require.Len(t, f.Failures, 1)
	require.Equal(t, "endpoint refused: address not allowed", f.Failures[0].Reason)
}

// Web devices' signing secrets at rest: one registered through the API
// and one row stored before secrets were sealed (plaintext, written to the
// table directly). Checked: the API's row holds a sealed value, not the
// secret; both devices are delivered and the receiver verifies each
// signature with the plaintext secret (the specification's library).
func TestPushWebDeviceSecretsAreSealed(t *testing.T) {
	b := setup(t)
	srv := b.usePush()
	b.startCoordinator("c1")
	b.startWorker("w1")

	places := []place{{"cairo", "Africa/Cairo"}}
	b.putReminder("isha", 1, time.Now().Add(2*time.Hour), places)
	b.register("isha", 1, 2, places)
	url, secret := srv.web.Endpoint("1")
	b.putDevice("1", "browser", map[string]any{"platform": "web", "token": url, "secret": secret})
	var row store.Device
	require.NoError(t, b.env.DB.Where("user_id = ? AND device_id = ?", "1", "browser").First(&row).Error)
	require.True(t, seal.IsSealed(row.Secret), "stored: %s", row.Secret)
	require.NotContains(t, row.Secret, strings.TrimPrefix(secret, "whsec_"))
	require.Equal(t, "e2e", seal.KeyOf(row.Secret))
	url, secret = srv.web.Endpoint("2")
	require.NoError(t, b.env.DB.Create(&store.Device{AppID: row.AppID, UserID: "2", DeviceID: "browser", Platform: store.PlatformWeb,
		Token: url, Secret: secret}).Error)

	fireAt := nextSecond(2 * time.Second)
	b.putReminder("isha", 1, fireAt, places)
	occ := at(b.waitDone("isha", 1, time.Minute), fireAt)
	require.Len(t, occ, 1)
	require.EqualValues(t, 2, occ[0].Delivered)
	require.Len(t, srv.web.Events("1"), 1)
	require.Len(t, srv.web.Events("2"), 1)
	_, unverified := srv.web.Counts()
	require.Zero(t, unverified)
}

// Two workers share FCM's rate limit through Redis (10 messages a minute
// here). Fault injected: a quota far below the audience, with a validity
// window of 4 seconds. Checked: the two workers together send exactly the
// quota, and the other users are recorded as expired (per device in the
// channel counts and failures, per user in the occurrence), not sent late.
func TestPushRateLimitExpiresWhatWouldBeLate(t *testing.T) {
	b := setup(t)
	srv := b.usePush()
	b.cfg.Push.FCMRate = 10
	b.startCoordinator("c1")
	b.startWorker("w1")
	b.startWorker("w2")

	places := []place{{"cairo", "Africa/Cairo"}}
	const users = 30
	put := func(at time.Time) {
		loc, err := time.LoadLocation("Africa/Cairo")
		require.NoError(t, err)
		code := b.call(http.MethodPut, "/v1/reminders/sale", map[string]any{
			"title": "Sale", "body": "opens now", "groups": 2, "valid_for": "4s",
			"times": []api.ReminderTime{{Location: "cairo", Zone: "Africa/Cairo", LocalTime: at.In(loc).Format("15:04:05")}},
		}, nil)
		require.Contains(t, []int{200, 201}, code)
	}
	put(time.Now().Add(2 * time.Hour))
	b.register("sale", 500, users, places)
	for i := range users {
		b.putDevice(strconv.Itoa(500+i), "pixel", map[string]any{"platform": "android", "token": "fcm-" + strconv.Itoa(500+i)})
	}
	fireAt := nextSecond(2 * time.Second)
	put(fireAt)
	occ := at(b.waitDone("sale", 1, time.Minute), fireAt)
	require.Len(t, occ, 1)

	accepted, _, _ := srv.fcm.Counts()
	require.Equal(t, 10, accepted, "the two workers together kept to the quota")
	require.EqualValues(t, 10, occ[0].Delivered)
	require.EqualValues(t, users-10, occ[0].Expired)
	require.Zero(t, occ[0].Failed)
	var ch struct{ Channels []api.ChannelCounts }
	require.Equal(t, 200, b.call(http.MethodGet, fmt.Sprintf("/v1/occurrences/%d/channels", occ[0].ID), nil, &ch))
	require.Equal(t, []api.ChannelCounts{{Channel: "fcm", Sent: 10, Expired: users - 10}}, ch.Channels)
	var f struct{ Failures []api.DeliveryFailure }
	require.Equal(t, 200, b.call(http.MethodGet, fmt.Sprintf("/v1/occurrences/%d/failures", occ[0].ID), nil, &f))
	require.Len(t, f.Failures, users-10)
	require.Contains(t, f.Failures[0].Reason, "expired: rate limit of fcm")
}

// Fault: a worker process delivering through the push channel is killed
// with SIGKILL mid-group. Checked: every device still gets the reminder
// (the group is queued again and resumes at its checkpoint), no group
// repeats more than one chunk, and the occurrence counts every user once.
func TestPushWorkerKilledMidGroupLosesNoDevice(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a worker process")
	}
	b := setup(t)
	srv := b.usePush()
	bin := build(t, "worker")

	// Each FCM request takes 100ms, so a chunk of 10 takes at least that.
	srv.fcm.Delay = 100 * time.Millisecond
	const users, groups, chunk = 300, 4, 10
	b.cfg.ChunkSize = chunk
	b.startCoordinator("c1")
	p := b.cfg.Push
	worker := func(name string) *exec.Cmd {
		return b.startWorkerProcess(bin, name, "CHIME_SENDER=push", "CHIME_FCM_PROJECT="+p.FCMProject,
			"CHIME_FCM_CREDENTIALS_FILE="+p.FCMCredentialsFile, "CHIME_FCM_ENDPOINT="+p.FCMEndpoint)
	}
	first := worker("doomed")
	t.Cleanup(func() { _ = first.Process.Kill(); _, _ = first.Process.Wait() })

	places := []place{{"istanbul", "Europe/Istanbul"}}
	b.putReminder("maghrib", groups, time.Now().Add(2*time.Hour), places)
	b.register("maghrib", 7000, users, places)
	tokens := make([]string, users)
	for i := range users {
		tokens[i] = "fcm-" + strconv.Itoa(7000+i)
		b.putDevice(strconv.Itoa(7000+i), "pixel", map[string]any{"platform": "android", "token": tokens[i]})
	}
	fireAt := nextSecond(2 * time.Second)
	b.putReminder("maghrib", groups, fireAt, places)

	reached := func() int {
		n, _, _ := srv.fcm.Counts()
		return n
	}
	testenv.WaitUntil(t, time.Minute, "a third of the devices reached", func() bool { return reached() >= users/3 })
	require.NoError(t, first.Process.Signal(os.Kill))
	_, _ = first.Process.Wait()
	killedAt := reached()
	require.Less(t, killedAt, users, "the worker finished before it could be killed")
	t.Logf("killed the worker after %d of %d devices", killedAt, users)

	second := worker("survivor")
	t.Cleanup(func() { _ = second.Process.Signal(os.Interrupt); _, _ = second.Process.Wait() })
	occ := at(b.waitDone("maghrib", 1, 2*time.Minute), fireAt)
	require.Len(t, occ, 1)
	require.EqualValues(t, users, occ[0].Delivered, "recorded deliveries")
	dups := map[int]int{}
	for i, tok := range tokens {
		n := len(srv.fcm.Messages(tok))
		require.Positive(t, n, "device of user %d never reached", 7000+i)
		if n > 1 {
			dups[grouping.Of(strconv.Itoa(7000+i), groups)] += n - 1
		}
	}
	for g, n := range dups {
		require.LessOrEqual(t, n, chunk, "group %d repeated %d deliveries", g, n)
	}
	t.Logf("duplicates per group: %v", dups)
}

// The push sender composes with package content: each device gets the
// reminder's templates filled in its own language (Arabic for an "ar-SA"
// phone, English otherwise), and two identical reminders firing together
// reach each device once (the second is merged, and counted delivered).
func TestPushComposesPerDeviceAndMergesIdenticalReminders(t *testing.T) {
	b := setup(t)
	srv := b.usePush()
	b.cfg.MergeWindow = time.Minute
	b.startCoordinator("c1")
	b.startWorker("w1")

	zone, err := time.LoadLocation("Asia/Jakarta")
	require.NoError(t, err)
	sale := func(at time.Time) map[string]any {
		return map[string]any{
			"title": "Flash sale in {{.Location}}", "body": "70% off from {{.LocalTime}}", "lang": "en", "valid_for": "5m",
			"translations": map[string]any{"ar": map[string]string{"title": "تخفيضات في {{.Location}}", "body": "خصم 70% من الساعة {{.LocalTime}}"}},
			"times":        []api.ReminderTime{{Location: "jakarta", Zone: "Asia/Jakarta", LocalTime: at.In(zone).Format("15:04:05")}},
		}
	}
	later := time.Now().Add(2 * time.Hour)
	for _, key := range []string{"sale", "sale-copy"} {
		require.Equal(t, http.StatusCreated, b.call(http.MethodPut, "/v1/reminders/"+key, sale(later), nil))
		b.register(key, 1, 10, []place{{"jakarta", "Asia/Jakarta"}})
	}
	locale := func(u int) string { return map[bool]string{true: "ar-SA", false: "en-US"}[u%2 == 0] }
	for u := 1; u <= 10; u++ {
		b.putDevice(strconv.Itoa(u), "phone", map[string]any{"platform": "android", "token": "fcm-" + strconv.Itoa(u), "locale": locale(u)})
	}
	iphone := fmt.Sprintf("%064x", 2)
	b.putDevice("2", "iphone", map[string]any{"platform": "ios", "token": iphone, "locale": "ar"})

	fireAt := nextSecond(2 * time.Second)
	for _, key := range []string{"sale", "sale-copy"} {
		require.Equal(t, http.StatusOK, b.call(http.MethodPut, "/v1/reminders/"+key, sale(fireAt), nil))
	}
	var occ []api.Occurrence
	for _, key := range []string{"sale", "sale-copy"} {
		occ = append(occ, at(b.waitDone(key, 1, time.Minute), fireAt)...)
	}
	require.Len(t, occ, 2)

	local := fireAt.In(zone).Format("15:04")
	for u := 1; u <= 10; u++ {
		msgs := srv.fcm.Messages("fcm-" + strconv.Itoa(u))
		require.Len(t, msgs, 1, "user %d: one message for two identical reminders", u)
		want := map[string]string{"title": "Flash sale in jakarta", "body": "70% off from " + local}
		if u%2 == 0 {
			want = map[string]string{"title": "تخفيضات في jakarta", "body": "خصم 70% من الساعة " + local}
		}
		require.Equal(t, want, msgs[0].Notification, "user %d", u)
	}
	pushes := srv.apns.Pushes(iphone)
	require.Len(t, pushes, 1)
	require.Equal(t, "تخفيضات في jakarta", pushes[0].Payload["aps"].(map[string]any)["alert"].(map[string]any)["title"])

	var delivered int64
	merged := int64(0)
	for _, o := range occ {
		delivered += o.Delivered
		var ch struct{ Channels []api.ChannelCounts }
		require.Equal(t, 200, b.call(http.MethodGet, fmt.Sprintf("/v1/occurrences/%d/channels", o.ID), nil, &ch))
		for _, c := range ch.Channels {
			if c.Channel == "merged" {
				merged += c.Skipped
			}
		}
	}
	require.EqualValues(t, 20, delivered, "a merged user counts as delivered")
	require.EqualValues(t, 10, merged)
}
