package chime_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime"
)

func TestOnlineConfig(t *testing.T) {
	c, err := chime.LoadConfig(nil)
	require.NoError(t, err)
	require.Equal(t, chime.OnlineConfig{
		Enabled: false, GatewayAddr: ":8081", Heartbeat: 10 * time.Second, PingTimeout: 5 * time.Second,
		PresenceTTL: 30 * time.Second, InboxCap: 100, InboxTTL: 72 * time.Hour, UnreadTTL: 24 * time.Hour,
		StatusRetention: 168 * time.Hour, StatusPerUser: 200,
	}, c.Online)

	for _, tc := range []struct {
		env  []string
		want string // "" when valid
	}{
		{[]string{"CHIME_ONLINE=true", "CHIME_PRESENCE_TTL=16s"}, ""},
		{[]string{"CHIME_SIGNING_KEY_OVERLAP=1h", "CHIME_TOKEN_MAX_LIFETIME=2h", "CHIME_GATEWAY_MAX_CONNS_PER_USER=3",
			"CHIME_GATEWAY_HANDSHAKE_RATE=0.5", "CHIME_GATEWAY_HANDSHAKE_BURST=5"}, ""},
		{[]string{"CHIME_SIGNING_KEY_OVERLAP=-1s"}, "CHIME_SIGNING_KEY_OVERLAP"},
		{[]string{"CHIME_TOKEN_MAX_LIFETIME=-1s"}, "CHIME_TOKEN_MAX_LIFETIME"},
		{[]string{"CHIME_GATEWAY_HANDSHAKE_RATE=-1"}, "CHIME_GATEWAY_HANDSHAKE_RATE"},
		{[]string{"CHIME_GATEWAY_HANDSHAKE_BURST=-1"}, "CHIME_GATEWAY_HANDSHAKE_BURST"},
		{[]string{"CHIME_PRESENCE_TTL=15s"}, "CHIME_PRESENCE_TTL"},
		{[]string{"CHIME_HEARTBEAT_INTERVAL=0s"}, "CHIME_HEARTBEAT_INTERVAL"},
		{[]string{"CHIME_INBOX_CAP=0"}, "CHIME_INBOX_CAP"},
		{[]string{"CHIME_INBOX_CAP=5001"}, "CHIME_INBOX_CAP"},
		{[]string{"CHIME_UNREAD_TTL=-1h"}, "CHIME_UNREAD_TTL"},
		{[]string{"CHIME_STATUS_PER_USER=0"}, "CHIME_STATUS_PER_USER"},
		{[]string{"CHIME_STATUS_RETENTION=x"}, "StatusRetention"},
	} {
		_, err := chime.LoadConfig(tc.env)
		if tc.want == "" {
			require.NoError(t, err, tc.env)
		} else {
			require.ErrorContains(t, err, tc.want, tc.env)
		}
	}
	_, err = chime.NewGateway(c, nil, nil, nil, nil, nil)
	require.ErrorContains(t, err, "CHIME_SECRET_KEYS")
}
