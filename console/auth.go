package console

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-redis/redis_rate/v10"

	"github.com/chime-dev/chime/store"
)

// loginCookie holds the sign-in form's CSRF token until there is a session
// (a double-submitted cookie).
const loginCookie = "chime_console_login"

type loginData struct {
	Email string
	CSRF  string
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.showLogin(w, r, http.StatusOK, "", "")
}

func (c *Console) showLogin(w http.ResponseWriter, r *http.Request, status int, email, msg string) {
	tok := randomToken()
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: tok, Path: Path + "/login", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, MaxAge: 3600})
	c.render(w, status, "login", page{Title: "Sign in", Message: msg, Data: loginData{Email: email, CSRF: tok}})
}

// dummyHash is checked against when the email is unknown, so that a wrong
// email takes as long as a wrong password.
var dummyHash, _ = HashPassword("not-a-password-of-anyone")

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		c.showLogin(w, r, http.StatusBadRequest, "", "The form could not be read.")
		return
	}
	email := strings.ToLower(strings.TrimSpace(r.PostFormValue("email")))
	ck, err := r.Cookie(loginCookie)
	if err != nil || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(r.PostFormValue("csrf"))) != 1 {
		c.showLogin(w, r, http.StatusForbidden, email, "The sign-in form expired. Try again.")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if wait, err := c.allowLogin(ctx, email, clientIP(r)); err != nil {
		c.log.Error("check sign-in limit", "err", err)
		c.showLogin(w, r, http.StatusServiceUnavailable, email, "Signing in is not possible just now; try again shortly.")
		return
	} else if wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		c.showLogin(w, r, http.StatusTooManyRequests, email,
			fmt.Sprintf("Too many sign-in attempts. Try again in %s.", wait.Round(time.Second)))
		return
	}
	u, err := store.FindConsoleUser(ctx, c.db, email)
	hash := u.PasswordHash
	if err != nil {
		hash = dummyHash
	}
	ok, herr := CheckPassword(hash, r.PostFormValue("password"))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		c.log.Error("find console user", "err", err)
	}
	if err != nil || herr != nil || !ok {
		c.showLogin(w, r, http.StatusUnauthorized, email, "The email or the password is wrong.")
		return
	}
	tok := randomToken()
	now := c.cfg.Now()
	sess := store.ConsoleSession{Hash: hashToken(tok), UserID: u.ID, CSRF: randomToken(), ExpiresAt: now.Add(c.cfg.SessionTTL)}
	if err := store.CreateConsoleSession(ctx, c.db, sess); err != nil {
		c.log.Error("create console session", "err", err)
		c.showLogin(w, r, http.StatusServiceUnavailable, email, "Signing in is not possible just now; try again shortly.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Path: Path + "/login", MaxAge: -1})
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: tok, Path: Path, HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, Expires: sess.ExpiresAt})
	http.Redirect(w, r, Path+"/reminders", http.StatusSeeOther)
}

// allowLogin counts one sign-in attempt for email and for ip and returns how
// long to wait if either is over its limit.
func (c *Console) allowLogin(ctx context.Context, email, ip string) (time.Duration, error) {
	var wait time.Duration
	for _, l := range []struct {
		key string
		n   int
	}{{"email:" + hashToken(email), c.cfg.LoginPerEmail}, {"ip:" + ip, c.cfg.LoginPerIP}} {
		res, err := c.limiter.Allow(ctx, c.cfg.Prefix+"console:login:"+l.key, redis_rate.Limit{Rate: l.n, Burst: l.n, Period: c.cfg.LoginWindow})
		if err != nil {
			return 0, err
		}
		if res.Allowed == 0 {
			wait = max(wait, res.RetryAfter)
		}
	}
	return wait, nil
}

// clientIP is the address the request came from. Forwarded headers are not
// trusted: anyone can send them.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := store.DeleteConsoleSession(r.Context(), c.db, s.Hash, c.cfg.Now()); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Path: Path, MaxAge: -1})
	http.Redirect(w, r, Path+"/login", http.StatusSeeOther)
	return nil
}
