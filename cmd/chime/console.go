package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/mail"

	"gorm.io/gorm"

	"github.com/chime-dev/chime/console"
	"github.com/chime-dev/chime/store"
)

// consoleUser runs "chime console-user create APP EMAIL -role
// editor|viewer": a console user of the app, with a new password printed
// once (only its argon2id hash is stored).
func consoleUser(ctx context.Context, args, environ []string, stdout io.Writer) error {
	const form = "APP EMAIL [-role editor|viewer]"
	if len(args) == 0 || args[0] != "create" {
		return errors.New("usage: chime console-user create " + form)
	}
	fs := flag.NewFlagSet("console-user create", flag.ContinueOnError)
	role := fs.String("role", store.RoleViewer, "editor (looks and changes) or viewer (looks)")
	pos, err := parse(fs, args[1:], 2, form)
	if err != nil {
		return err
	}
	if *role != store.RoleEditor && *role != store.RoleViewer {
		return fmt.Errorf("console-user create: -role must be editor or viewer, not %q", *role)
	}
	email := pos[1]
	if a, err := mail.ParseAddress(email); err != nil || a.Address != email || len(email) > 254 {
		return fmt.Errorf("console-user create: %q is not an email address", email)
	}
	password := console.NewPassword()
	hash, err := console.HashPassword(password)
	if err != nil {
		return err
	}
	return withDB(ctx, environ, func(db *gorm.DB) error {
		app, err := findApp(ctx, db, pos[0])
		if err != nil {
			return err
		}
		u, err := store.CreateConsoleUser(ctx, db, store.ConsoleUser{AppID: app.ID, Email: email, PasswordHash: hash, Role: *role})
		if errors.Is(err, store.ErrExists) {
			return fmt.Errorf("console-user create: %s already has a console user (emails are unique over all apps)", email)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "console user %d %s (%s) of app %d %q\npassword (shown once): %s\n", u.ID, u.Email, u.Role, app.ID, app.Name, password)
		return nil
	})
}
