package api_test

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/netguard"
	"github.com/chime-dev/chime/seal"
	"github.com/chime-dev/chime/store"
)

const iosToken = "740f4707bebcf74f9b7c25d48e3358945f6aa01da5ddb387462c7eaf61bb78ad"

// A device is registered (201), replaced (200), listed, and removed (204);
// the web device's secret is stored but never returned; another app sees
// none of it.
func TestDeviceLifecycle(t *testing.T) {
	b := setup(t)
	var d api.Device
	requireJSON(t, b.as("PUT", "/v1/users/u1/devices/iphone", map[string]any{"platform": "ios", "token": iosToken, "locale": "ar-SA", "app_version": "5.2.1"}), 201, &d)
	require.Equal(t, api.Device{UserID: "u1", DeviceID: "iphone", Platform: "ios", Token: iosToken, Locale: "ar-SA", AppVersion: "5.2.1",
		Enabled: true, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt}, d)
	var replaced api.Device
	requireJSON(t, b.as("PUT", "/v1/users/u1/devices/iphone", map[string]any{"platform": "android", "token": "fcm-token-1"}), 200, &replaced)
	require.Equal(t, "android", replaced.Platform)
	require.Empty(t, replaced.Locale)
	r := b.as("PUT", "/v1/users/u1/devices/browser", map[string]any{"platform": "web", "token": "https://push.example.com/h/u1",
		"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
	requireJSON(t, r, 201, nil)
	require.NotContains(t, string(r.Body), "whsec_")

	var list struct{ Devices []api.Device }
	r = b.as("GET", "/v1/users/u1/devices", nil)
	requireJSON(t, r, 200, &list)
	require.Len(t, list.Devices, 2)
	require.Equal(t, "browser", list.Devices[0].DeviceID)
	require.NotContains(t, string(r.Body), "whsec_")
	require.NotContains(t, string(r.Body), seal.Prefix)
	// The column holds the secret sealed, bound to the device's row.
	var stored store.Device
	require.NoError(t, b.env.DB.Where("device_id = ?", "browser").First(&stored).Error)
	require.True(t, seal.IsSealed(stored.Secret), stored.Secret)
	require.NotContains(t, stored.Secret, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	plain, err := b.keyring.Open(stored.Secret, store.DeviceSecretAAD(b.appA.ID, "u1", "browser"))
	require.NoError(t, err)
	require.Equal(t, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", string(plain))
	_, err = b.keyring.Open(stored.Secret, store.DeviceSecretAAD(b.appA.ID, "u2", "browser"))
	require.ErrorIs(t, err, seal.ErrCorrupt, "the value opens in its own row only")

	// App B sees nothing and can remove nothing of app A's.
	requireJSON(t, b.req("GET", "/v1/users/u1/devices", b.keyB, nil), 200, &list)
	require.Empty(t, list.Devices)
	requireProblem(t, b.req("DELETE", "/v1/users/u1/devices/iphone", b.keyB, nil), 404)

	require.Equal(t, http.StatusNoContent, b.as("DELETE", "/v1/users/u1/devices/iphone", nil).Status)
	requireProblem(t, b.as("DELETE", "/v1/users/u1/devices/iphone", nil), 404, `user "u1" has no device "iphone"`)
	require.EqualValues(t, 1, b.count(&store.Device{}))
}

// Registering a device again enables it after a provider disabled it.
func TestDeviceRegisteredAgainIsEnabled(t *testing.T) {
	b := setup(t)
	requireJSON(t, b.as("PUT", "/v1/users/u1/devices/iphone", map[string]any{"platform": "ios", "token": iosToken}), 201, nil)
	now := time.Now()
	require.NoError(t, b.env.DB.Model(&store.Device{}).Where("device_id = ?", "iphone").
		Updates(map[string]any{"disabled_at": now, "disabled_reason": "Unregistered"}).Error)
	var list struct{ Devices []api.Device }
	requireJSON(t, b.as("GET", "/v1/users/u1/devices", nil), 200, &list)
	require.False(t, list.Devices[0].Enabled)
	require.Equal(t, "Unregistered", list.Devices[0].DisabledReason)
	var d api.Device
	requireJSON(t, b.as("PUT", "/v1/users/u1/devices/iphone", map[string]any{"platform": "ios", "token": strings.ToUpper(iosToken)}), 200, &d)
	require.True(t, d.Enabled)
	require.Nil(t, d.DisabledAt)
	require.Empty(t, d.DisabledReason)
}

// Bad input gets a problem document naming what is wrong, and nothing is
// stored.
func TestDeviceBadInput(t *testing.T) {
	b := setup(t)
	for _, tc := range []struct {
		name   string
		path   string
		body   any
		status int
		field  string
	}{
		{"unknown platform", "/v1/users/u1/devices/d1", map[string]any{"platform": "symbian", "token": "x"}, 422, "platform"},
		{"ios token not hex", "/v1/users/u1/devices/d1", map[string]any{"platform": "ios", "token": "not-hex"}, 422, "token"},
		{"ios token short", "/v1/users/u1/devices/d1", map[string]any{"platform": "ios", "token": "abcd"}, 422, "token"},
		{"android token with space", "/v1/users/u1/devices/d1", map[string]any{"platform": "android", "token": "a b"}, 422, "token"},
		{"android empty token", "/v1/users/u1/devices/d1", map[string]any{"platform": "android", "token": ""}, 422, "token"},
		{"web token not a URL", "/v1/users/u1/devices/d1", map[string]any{"platform": "web", "token": "push.example.com", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, 422, "token"},
		{"web without secret", "/v1/users/u1/devices/d1", map[string]any{"platform": "web", "token": "https://push.example.com/h"}, 422, "secret"},
		{"web bad secret", "/v1/users/u1/devices/d1", map[string]any{"platform": "web", "token": "https://push.example.com/h", "secret": "hunter2"}, 422, "secret"},
		{"secret on ios", "/v1/users/u1/devices/d1", map[string]any{"platform": "ios", "token": iosToken, "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, 422, "secret"},
		{"bad locale", "/v1/users/u1/devices/d1", map[string]any{"platform": "ios", "token": iosToken, "locale": "not a locale"}, 422, "locale"},
		{"long app version", "/v1/users/u1/devices/d1", map[string]any{"platform": "ios", "token": iosToken, "app_version": strings.Repeat("1", 51)}, 422, "app_version"},
		{"unknown field", "/v1/users/u1/devices/d1", map[string]any{"platform": "ios", "token": iosToken, "colour": "red"}, 400, ""},
		{"empty body", "/v1/users/u1/devices/d1", nil, 400, ""},
		{"bad device ID", "/v1/users/u1/devices/a%20b", map[string]any{"platform": "ios", "token": iosToken}, 422, ""},
		{"bad user ID", "/v1/users/a%20b/devices/d1", map[string]any{"platform": "ios", "token": iosToken}, 422, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := requireProblem(t, b.as("PUT", tc.path, tc.body), tc.status)
			if tc.field != "" {
				require.Len(t, p.Errors, 1, fmt.Sprint(p.Errors))
				require.Equal(t, tc.field, p.Errors[0].Field)
			}
		})
	}
	require.Zero(t, b.count(&store.Device{}))
}

// Injected: web device endpoints that name the operator's network by
// address (the cloud metadata address, Redis on loopback, IPv6 loopback, a
// private range, IPv4-mapped, zoned link-local, CGNAT, unspecified, and
// IPv4 in decimal and hex forms), a URL with credentials, other schemes and
// an over-long URL. Checked: each is refused with 422 naming the token and
// nothing is stored; a name ("localhost") is stored (the workers check the
// address it resolves to when they send); with loopback in the allow-list
// (CHIME_WEB_DEVICE_ALLOW_CIDRS) a loopback address is stored.
func TestWebDeviceEndpointsOffTheInternetAreRefused(t *testing.T) {
	b := setup(t)
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	for _, tc := range []struct{ url, mention string }{
		{"http://169.254.169.254/latest/meta-data/", "169.254.169.254 is not allowed"},
		{"http://127.0.0.1:6379/", "127.0.0.1 is not allowed"},
		{"http://[::1]/", "::1 is not allowed"},
		{"http://10.0.0.1/", "10.0.0.1 is not allowed"},
		{"https://192.168.1.10/hook", "not allowed"},
		{"http://[::ffff:127.0.0.1]/", "not allowed"},
		{"http://[fe80::1%25eth0]/", "not allowed"},
		{"http://100.64.0.1/", "not allowed"},
		{"http://0.0.0.0:8080/", "not allowed"},
		{"http://2130706433/", "standard form"},
		{"http://0x7f.1/", "standard form"},
		{"http://017700000001./", "standard form"},
		{"https://user:password@push.example.com/h", "user name or password"},
		{"https://token@push.example.com/h", "user name or password"},
		{"ftp://push.example.com/h", "absolute http or https URL"},
		{"file:///etc/passwd", "absolute http or https URL"},
		{"gopher://127.0.0.1:6379/_INFO", "absolute http or https URL"},
		{"http:///path-only", "absolute http or https URL"},
		{"https://push.example.com/" + strings.Repeat("a", 2048), "at most 2048 bytes"},
	} {
		t.Run(tc.url[:min(len(tc.url), 40)], func(t *testing.T) {
			p := requireProblem(t, b.as("PUT", "/v1/users/u1/devices/d1", map[string]any{"platform": "web", "token": tc.url, "secret": secret}), 422, tc.mention)
			require.Len(t, p.Errors, 1, fmt.Sprint(p.Errors))
			require.Equal(t, "token", p.Errors[0].Field)
		})
	}
	require.Zero(t, b.count(&store.Device{}))
	requireJSON(t, b.as("PUT", "/v1/users/u1/devices/d1", map[string]any{"platform": "web", "token": "http://localhost:6379/", "secret": secret}), 201, nil)
	requireJSON(t, b.as("PUT", "/v1/users/u1/devices/d2", map[string]any{"platform": "web", "token": "https://[2606:4700:4700::1111]/hook", "secret": secret}), 201, nil)

	open := setupWith(t, api.Config{Keyring: newKeyring(t), WebDeviceGuard: netguard.New([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})})
	requireJSON(t, open.as("PUT", "/v1/users/u1/devices/d1", map[string]any{"platform": "web", "token": "http://127.0.0.1:6379/", "secret": secret}), 201, nil)
	requireProblem(t, open.as("PUT", "/v1/users/u1/devices/d2", map[string]any{"platform": "web", "token": "http://[::1]/", "secret": secret}), 422, "::1 is not allowed")
}

// Without CHIME_SECRET_KEYS a web device's secret cannot be stored sealed:
// its registration is answered 503 naming the setting, and nothing is
// stored; devices without a secret still register.
func TestWebDeviceWithoutSecretKeysIsUnavailable(t *testing.T) {
	b := setupWith(t, api.Config{})
	requireProblem(t, b.as("PUT", "/v1/users/u1/devices/browser", map[string]any{"platform": "web", "token": "https://push.example.com/h/u1",
		"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}), http.StatusServiceUnavailable, "CHIME_SECRET_KEYS")
	require.Zero(t, b.count(&store.Device{}))
	// Bad input is still 422, before the missing keys.
	requireProblem(t, b.as("PUT", "/v1/users/u1/devices/browser", map[string]any{"platform": "web", "token": "http://10.0.0.1/",
		"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}), 422, "token")
	requireJSON(t, b.as("PUT", "/v1/users/u1/devices/iphone", map[string]any{"platform": "ios", "token": iosToken}), 201, nil)
}

// The per-channel counts and the failures of an occurrence are served to its
// app only, failures page by page.
func TestOccurrenceChannelsAndFailures(t *testing.T) {
	b := setup(t)
	b.putReminder("fajr", reminder("Fajr", at("jakarta", "Asia/Jakarta", "04:20")))
	rem := b.storedReminder("fajr")
	var loc store.Location
	require.NoError(t, b.env.DB.First(&loc).Error)
	occ := store.Occurrence{ReminderID: rem.ID, LocationID: loc.ID, FireAt: time.Now().UTC(), ExpiresAt: time.Now().UTC().Add(time.Hour), State: store.OccDone}
	require.NoError(t, b.env.DB.Create(&occ).Error)
	rows := []store.DeliveryCount{
		{OccurrenceID: occ.ID, GroupNo: 0, Chunk: "a", Channel: "apns", Sent: 10, Failed: 1},
		{OccurrenceID: occ.ID, GroupNo: 1, Chunk: "m", Channel: "apns", Sent: 5},
		{OccurrenceID: occ.ID, GroupNo: 1, Chunk: "m", Channel: "fcm", Sent: 7, Expired: 2},
		{OccurrenceID: occ.ID, GroupNo: 1, Chunk: "m", Channel: "none", Skipped: 3},
	}
	require.NoError(t, b.env.DB.Create(&rows).Error)
	var fails []store.DeliveryFailure
	for i := range 5 {
		fails = append(fails, store.DeliveryFailure{OccurrenceID: occ.ID, UserID: fmt.Sprintf("u%d", i/2), DeviceID: fmt.Sprintf("d%d", i),
			GroupNo: 1, Channel: "apns", Reason: "Unregistered"})
	}
	require.NoError(t, b.env.DB.Create(&fails).Error)

	var ch struct {
		Occurrence int64
		Group      *int
		Channels   []api.ChannelCounts
	}
	path := fmt.Sprintf("/v1/occurrences/%d/channels", occ.ID)
	requireJSON(t, b.as("GET", path, nil), 200, &ch)
	require.Equal(t, []api.ChannelCounts{
		{Channel: "apns", Sent: 15, Failed: 1}, {Channel: "fcm", Sent: 7, Expired: 2}, {Channel: "none", Skipped: 3},
	}, ch.Channels)
	requireJSON(t, b.as("GET", path+"?group=0", nil), 200, &ch)
	require.Equal(t, []api.ChannelCounts{{Channel: "apns", Sent: 10, Failed: 1}}, ch.Channels)
	requireProblem(t, b.as("GET", path+"?group=x", nil), 400)
	requireProblem(t, b.req("GET", path, b.keyB, nil), 404)
	requireProblem(t, b.as("GET", "/v1/occurrences/abc/channels", nil), 404)

	var got []api.DeliveryFailure
	next := ""
	for page := 0; ; page++ {
		var out struct {
			Failures []api.DeliveryFailure
			Next     string
		}
		requireJSON(t, b.as("GET", fmt.Sprintf("/v1/occurrences/%d/failures?limit=2&after=%s", occ.ID, next), nil), 200, &out)
		got = append(got, out.Failures...)
		if out.Next == "" {
			break
		}
		require.Less(t, page, 5)
		next = out.Next
	}
	require.Len(t, got, 5)
	for i, f := range got {
		require.Equal(t, fmt.Sprintf("d%d", i), f.DeviceID)
		require.Equal(t, "Unregistered", f.Reason)
	}
	requireProblem(t, b.as("GET", fmt.Sprintf("/v1/occurrences/%d/failures?after=garbage", occ.ID), nil), 400)
	requireProblem(t, b.req("GET", fmt.Sprintf("/v1/occurrences/%d/failures", occ.ID), b.keyB, nil), 404)
}
