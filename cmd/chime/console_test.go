package main

import (
	"bytes"
	"context"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/console"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/store"
)

// TestConsoleUserCreate runs the command on a real database: an editor is
// created for an app named by name, with a printed password that its
// stored argon2id hash accepts; the same email again, a bad role, a bad
// email and an unknown app are refused.
func TestConsoleUserCreate(t *testing.T) {
	env := testenv.New(t)
	app, _, _, err := store.CreateApp(t.Context(), env.DB, "shop", "")
	require.NoError(t, err)
	environ := []string{"MYSQL_DSN=" + env.DSN}
	var out, errOut bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"console-user", "create", "shop", "pm@example.com", "-role", "editor"}, environ, &out, &errOut))
	m := regexp.MustCompile(`password \(shown once\): (\S+)`).FindStringSubmatch(out.String())
	require.NotNil(t, m, out.String())
	u, err := store.FindConsoleUser(t.Context(), env.DB, "PM@example.com")
	require.NoError(t, err)
	require.Equal(t, app.ID, u.AppID)
	require.Equal(t, store.RoleEditor, u.Role)
	require.NotContains(t, u.PasswordHash, m[1])
	ok, err := console.CheckPassword(u.PasswordHash, m[1])
	require.NoError(t, err)
	require.True(t, ok)
	ok, _ = console.CheckPassword(u.PasswordHash, m[1]+"x")
	require.False(t, ok)

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"shop", "pm@example.com"}, "already has a console user"},
		{[]string{"shop", "other@example.com", "-role", "admin"}, "-role must be editor or viewer"},
		{[]string{"shop", "not an email"}, "is not an email address"},
		{[]string{"nope", "x@example.com"}, `no app is named "nope"`},
	} {
		err := run(context.Background(), append([]string{"console-user", "create"}, tc.args...), environ, &out, &errOut)
		require.ErrorContains(t, err, tc.want)
	}
}
