package console_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/console"
	"github.com/chime-dev/chime/store"
)

// client is a browser-like HTTP client of the console: a cookie jar, no
// redirects followed.
type client struct {
	t    *testing.T
	b    *bundle
	http *http.Client
}

func (b *bundle) client(t *testing.T) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, b: b, http: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (c *client) do(method, path string, form url.Values) (*http.Response, string) {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.b.url+path, body)
	require.NoError(c.t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	res, err := c.http.Do(req)
	require.NoError(c.t, err)
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return res, string(raw)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn posts the sign-in form and returns the answer.
func (c *client) signIn(email, pw string) *http.Response {
	c.t.Helper()
	_, page := c.do("GET", "/console/login", nil)
	m := csrfField.FindStringSubmatch(page)
	require.NotNil(c.t, m, page)
	res, _ := c.do("POST", "/console/login", url.Values{"csrf": {m[1]}, "email": {email}, "password": {pw}})
	return res
}

// Injects: sign-ins with a right and a wrong password, a sixth attempt for
// one email within the window, more than the per-address limit over many
// emails, a POST without the CSRF token and one with another session's,
// and a signed-out request.
// Checks: the session cookie is HttpOnly and SameSite=Strict and its value
// is not what is stored (only its SHA-256); wrong passwords get 401 and
// the sixth attempt 429 with Retry-After even with the right password;
// the address limit answers 429 for a fresh email; CSRF-less and foreign
// tokens get 403 and change nothing; signed out, pages redirect to the
// sign-in page; every page carries a CSP without inline script.
func TestSignIn(t *testing.T) {
	b := setup(t)
	c := b.client(t)
	res := c.signIn("editor@a.example", password)
	require.Equal(t, http.StatusSeeOther, res.StatusCode)
	var sess *http.Cookie
	for _, ck := range res.Cookies() {
		if ck.Name == "chime_console" {
			sess = ck
		}
	}
	require.NotNil(t, sess)
	require.True(t, sess.HttpOnly)
	require.Equal(t, http.SameSiteStrictMode, sess.SameSite)
	var n int64
	require.NoError(t, b.env.DB.Model(&store.ConsoleSession{}).Where("hash = ?", sess.Value).Count(&n).Error)
	require.Zero(t, n, "the cookie's value is not stored")

	res, page := c.do("GET", "/console/reminders", nil)
	require.Equal(t, 200, res.StatusCode)
	require.Contains(t, res.Header.Get("Content-Security-Policy"), "script-src 'self'")
	require.NotContains(t, res.Header.Get("Content-Security-Policy"), "unsafe-inline")
	require.NotRegexp(t, `<script>|<script [^s]|\son[a-z]+=`, page, "no inline script or handler")

	// CSRF: a save without the token, and with a token of another session.
	form := url.Values{"key": {"k"}, "title": {"T"}, "times.location": {"paris"}, "times.zone": {"Europe/Paris"}, "times.local_time": {"08:00"}, "new": {"1"}}
	res, _ = c.do("POST", "/console/reminders/save", form)
	require.Equal(t, http.StatusForbidden, res.StatusCode)
	other := b.client(t)
	require.Equal(t, http.StatusSeeOther, other.signIn("viewer@a.example", password).StatusCode)
	_, otherPage := other.do("GET", "/console/reminders", nil)
	form.Set("csrf", csrfField.FindStringSubmatch(otherPage)[1])
	res, _ = c.do("POST", "/console/reminders/save", form)
	require.Equal(t, http.StatusForbidden, res.StatusCode)
	require.Equal(t, 404, b.call(b.keyA, "GET", "/v1/reminders/k", "", nil, nil))
	form.Set("csrf", csrfField.FindStringSubmatch(page)[1])
	res, _ = c.do("POST", "/console/reminders/save", form)
	require.Equal(t, http.StatusSeeOther, res.StatusCode, "with its own token the save goes through")

	// Per email: DefaultLoginPerEmail attempts (one was made above), then
	// 429 whatever the password.
	fresh := b.client(t)
	for range console.DefaultLoginPerEmail - 2 {
		require.Equal(t, http.StatusUnauthorized, fresh.signIn("viewer@a.example", "wrong password!").StatusCode)
	}
	require.Equal(t, http.StatusSeeOther, fresh.signIn("viewer@a.example", password).StatusCode)
	res = fresh.signIn("viewer@a.example", password)
	require.Equal(t, http.StatusTooManyRequests, res.StatusCode)
	require.NotEmpty(t, res.Header.Get("Retry-After"))

	// Per address: the attempts above and before count; the rest go to
	// unknown emails until the limit.
	used := 2 + console.DefaultLoginPerEmail
	for i := used; i < console.DefaultLoginPerIP; i++ {
		require.Equal(t, http.StatusUnauthorized, fresh.signIn("nobody"+strings.Repeat("x", i)+"@a.example", "wrong password!").StatusCode)
	}
	require.Equal(t, http.StatusTooManyRequests, fresh.signIn("editor@b.example", password).StatusCode)

	// Signed out.
	res, _ = b.client(t).do("GET", "/console/reminders", nil)
	require.Equal(t, http.StatusSeeOther, res.StatusCode)
	require.Equal(t, "/console/login", res.Header.Get("Location"))
}
