package webhook_test

import (
	"encoding/base64"
	"net/http"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/sender/webhook"
)

// The specification's own example: this secret, id, timestamp and payload
// sign to this value.
func TestSignatureMatchesSpecificationExample(t *testing.T) {
	s, err := webhook.ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	require.NoError(t, err)
	got := s.Signature("msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	require.Equal(t, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", got)
}

// Headers signed here verify with the specification's Go library; any
// change to the body, id or timestamp, or another secret, does not.
func TestSignatureVerifiesWithSpecLibrary(t *testing.T) {
	secret := webhook.NewSecret()
	signer, err := webhook.ParseSecret(secret)
	require.NoError(t, err)
	wh, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)
	other, err := standardwebhooks.NewWebhook(webhook.NewSecret())
	require.NoError(t, err)
	body := []byte(`{"type":"reminder.notification","data":{"title":"Fajr"}}`)
	signed := func() http.Header {
		h := http.Header{}
		signer.Sign(h, "msg_1", time.Now(), body)
		return h
	}
	for _, tc := range []struct {
		name   string
		wh     *standardwebhooks.Webhook
		body   []byte
		mangle func(http.Header)
		ok     bool
	}{
		{"as signed", wh, body, func(http.Header) {}, true},
		{"body changed", wh, []byte(`{"type":"reminder.notification","data":{"title":"Isha"}}`), func(http.Header) {}, false},
		{"id changed", wh, body, func(h http.Header) { h.Set("webhook-id", "msg_2") }, false},
		{"timestamp changed", wh, body, func(h http.Header) { h.Set("webhook-timestamp", "1614265330") }, false},
		{"another secret", other, body, func(http.Header) {}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := signed()
			tc.mangle(h)
			err := tc.wh.Verify(tc.body, h)
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
			}
		})
	}
}

func TestParseSecret(t *testing.T) {
	for _, tc := range []struct {
		secret string
		err    string
	}{
		{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", ""},
		{webhook.NewSecret(), ""},
		{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "must start with whsec_"},
		{"whsec_not base64!", "base64"},
		{"whsec_c2hvcnQ=", "24 to 64 bytes"},
		{webhook.SecretPrefix + base64.StdEncoding.EncodeToString(make([]byte, 64)), ""},
		{webhook.SecretPrefix + base64.StdEncoding.EncodeToString(make([]byte, 70)), "at most 64 bytes"},
		// The decoder skips line breaks: refused, or a secret could be any length.
		{"whsec_MfKQ9r8GKYqrTwjU\nPD8ILPZIo2LaLaSw", "one line"},
	} {
		_, err := webhook.ParseSecret(tc.secret)
		if tc.err == "" {
			require.NoError(t, err, tc.secret)
		} else {
			require.ErrorContains(t, err, tc.err, tc.secret)
		}
	}
}
