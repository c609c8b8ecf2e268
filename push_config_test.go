package chime_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime"
)

func TestPushConfiguration(t *testing.T) {
	base := []string{"CHIME_SENDER=push"}
	cfg, err := chime.LoadConfig(base)
	require.NoError(t, err)
	require.Equal(t, chime.PushConfig{APNSHost: "https://api.push.apple.com", APNSConns: 4, FCMRate: 600000, RetryFor: 20 * time.Second}, cfg.Push)

	cfg, err = chime.LoadConfig(append(base, "CHIME_APNS_KEY_FILE=/k.p8", "CHIME_APNS_KEY_ID=K", "CHIME_APNS_TEAM_ID=T",
		"CHIME_APNS_TOPIC=dev.chime.app", "CHIME_FCM_PROJECT=p", "CHIME_FCM_CREDENTIALS_FILE=/sa.json", "CHIME_FCM_RATE=1000",
		"CHIME_WEBHOOK_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
	require.NoError(t, err)
	require.Equal(t, "/k.p8", cfg.Push.APNSKeyFile)
	require.Equal(t, 1000, cfg.Push.FCMRate)
	require.Equal(t, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", cfg.WebhookSecret)

	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"CHIME_SENDER=apns"}, "CHIME_SENDER must be log, webhook or push"},
		{[]string{"CHIME_APNS_KEY_FILE=/k.p8"}, "CHIME_APNS_KEY_ID, CHIME_APNS_TEAM_ID and CHIME_APNS_TOPIC are required"},
		{[]string{"CHIME_FCM_PROJECT=p"}, "CHIME_FCM_CREDENTIALS_FILE is required"},
		{[]string{"CHIME_FCM_RATE=-1"}, "must not be negative"},
		{[]string{"CHIME_APNS_CONNS=0"}, "CHIME_APNS_CONNS must be at least 1"},
		{[]string{"CHIME_PUSH_RETRY_FOR=0s"}, "CHIME_PUSH_RETRY_FOR must be a positive duration"},
	} {
		_, err := chime.LoadConfig(append(append([]string{}, base...), tc.env...))
		require.ErrorContains(t, err, tc.want, tc.env)
	}
}

// CHIME_WEB_DEVICE_ALLOW_CIDRS is a list of CIDRs, empty by default; a value
// that is not one is refused, naming the setting.
func TestWebDeviceAllowCIDRs(t *testing.T) {
	cfg, err := chime.LoadConfig(nil)
	require.NoError(t, err)
	require.Empty(t, cfg.Push.WebDeviceAllowCIDRs)
	cfg, err = chime.LoadConfig([]string{"CHIME_WEB_DEVICE_ALLOW_CIDRS=127.0.0.0/8,::1/128"})
	require.NoError(t, err)
	require.Equal(t, "127.0.0.0/8,::1/128", cfg.Push.WebDeviceAllowCIDRs)
	for _, bad := range []string{"127.0.0.1", "localhost/8", "10.0.0.0/33", "127.0.0.0/8,nope"} {
		_, err = chime.LoadConfig([]string{"CHIME_WEB_DEVICE_ALLOW_CIDRS=" + bad})
		require.ErrorContains(t, err, "CHIME_WEB_DEVICE_ALLOW_CIDRS: ", bad)
		require.ErrorContains(t, err, "is not a CIDR", bad)
	}
}
