package chime_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/gateway"
	"github.com/chime-dev/chime/inbox"
	"github.com/chime-dev/chime/signing"
	"github.com/chime-dev/chime/store"
)

// Every app's tokens used to be signed with one CHIME_GATEWAY_SECRET, so
// the backend of app B could sign {"app": A, "sub": "alice"} and read, ack
// and mark read app A's inbox over the gateway. Injected: a message waiting
// in app A's user's inbox; app B's backend signs with the key it got from
// POST /v1/signing-keys, once claiming app A and once for itself, and a
// token signed with the old global secret. Checked: the claim of app A and
// the old secret are refused with 401 before the upgrade; B's own token
// connects and gets nothing of A's; A's token from the API gets A's message.
func TestAppCannotSignTokensForAnotherApp(t *testing.T) {
	b := setupOnline(t)
	b.startCoordinator("c1")
	url := b.startGateway("g1")
	appA := b.appID()
	keyB := b.otherApp()
	var skB signing.Key
	require.Equal(t, http.StatusCreated, b.callAs(keyB, http.MethodPost, "/v1/signing-keys", nil, &skB))
	var appB store.App
	require.NoError(t, b.env.DB.Where("name = ?", "other").First(&appB).Error)
	skB.App = appB.ID

	ctx := context.Background()
	_, err := b.cfg.Inbox(b.env.Redis).Add(ctx, appA, "alice", inbox.Message{ID: "o1", Occurrence: 1}, time.Now())
	require.NoError(t, err)

	now := time.Now()
	claimsA := jwt.MapClaims{"app": appA, "sub": "alice", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	forged := jwt.NewWithClaims(jwt.SigningMethodHS256, claimsA)
	forged.Header["kid"] = skB.ID
	forgedTok, err := forged.SignedString([]byte(skB.Secret))
	require.NoError(t, err)
	oldTok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claimsA).SignedString([]byte("test-secret-0123456789abcdef"))
	require.NoError(t, err)
	for name, tok := range map[string]string{"app B's key claiming app A": forgedTok, "the old global secret": oldTok} {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := gateway.Dial(dctx, url, tok, nil)
		cancel()
		require.ErrorContains(t, err, "401", name)
	}

	own, err := gateway.IssueToken(skB, "alice", time.Hour, now)
	require.NoError(t, err)
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := gateway.Dial(dctx, url, own, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.CloseNow() })
	require.Empty(t, welcome(t, c), "app B's alice is another user")

	replayed := welcome(t, b.connect(url, "alice"))
	require.Len(t, replayed, 1)
	require.Equal(t, "o1", replayed[0].Message.ID)
}

// The shell example of docs/gateway.md, run as written against a
// coordinator and a gateway: it rotates the app's key with curl, signs a
// token with openssl, and the gateway lets the client in with it.
func TestDocSigningExample(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	doc, err := os.ReadFile("docs/gateway.md")
	require.NoError(t, err)
	var script string
	for _, block := range strings.Split(string(doc), "```sh\n")[1:] {
		if body, _, _ := strings.Cut(block, "```"); strings.Contains(body, "openssl dgst") {
			script = body
		}
	}
	require.NotEmpty(t, script, "the signing example in docs/gateway.md")

	b := setupOnline(t)
	b.startCoordinator("c1")
	url := b.startGateway("g1")
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "API="+b.apiURL, "KEY="+b.key, "APP="+strconv.FormatInt(b.appID(), 10))
	out, err := cmd.Output()
	require.NoError(t, err, string(out))
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := gateway.Dial(ctx, url, lines[len(lines)-1], nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.CloseNow() })
	welcome(t, c)
}
