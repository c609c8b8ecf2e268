package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"gorm.io/gorm"

	"github.com/chime-dev/chime"
	"github.com/chime-dev/chime/apikey"
	"github.com/chime-dev/chime/store"
)

// runApp runs "chime app ...": apps and their API keys, straight on the
// database. Revocations are also announced on Redis, where every
// coordinator listens, so that none accepts the key a second later.
func runApp(ctx context.Context, args, environ []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("app: create, list or key\n" + usage) //nolint:staticcheck // ST1005: the usage follows the one-line error
	}
	switch args[0] {
	case "create":
		name, err := oneName(args[1:], "app create NAME")
		if err != nil {
			return err
		}
		return withDB(ctx, environ, func(db *gorm.DB) error {
			app, _, key, err := store.CreateApp(ctx, db, name, "")
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "app %d %q\napi key (shown once): %s\n", app.ID, app.Name, key)
			return nil
		})
	case "list":
		if len(args) != 1 {
			return errors.New("usage: chime app list")
		}
		return withDB(ctx, environ, func(db *gorm.DB) error { return listApps(ctx, db, stdout) })
	case "key":
		if len(args) < 2 {
			return errors.New("app key: create, list or revoke\n" + usage) //nolint:staticcheck // ST1005: the usage follows the one-line error
		}
		return runKey(ctx, args[1], args[2:], environ, stdout)
	}
	return fmt.Errorf("app: unknown subcommand %q\n%s", args[0], usage)
}

func runKey(ctx context.Context, sub string, args, environ []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("app key "+sub, flag.ContinueOnError)
	switch sub {
	case "create":
		name := fs.String("name", "", "the key's name")
		pos, err := parse(fs, args, 1, "APP [-name NAME]")
		if err != nil {
			return err
		}
		if err := store.CheckName(*name); err != nil {
			return fmt.Errorf("app key create: -name %v", err)
		}
		return withDB(ctx, environ, func(db *gorm.DB) error {
			app, err := findApp(ctx, db, pos[0])
			if err != nil {
				return err
			}
			k, key, err := store.CreateKey(ctx, db, app.ID, *name, time.Now())
			if errors.Is(err, store.ErrTooManyKeys) {
				return fmt.Errorf("app %d %q has %d active keys, the most allowed; revoke one first", app.ID, app.Name, store.MaxActiveKeys)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "key %d %q of app %d %q\napi key (shown once): %s\n", k.ID, k.Name, app.ID, app.Name, key)
			return nil
		})
	case "list":
		pos, err := parse(fs, args, 1, "APP")
		if err != nil {
			return err
		}
		return withDB(ctx, environ, func(db *gorm.DB) error {
			app, err := findApp(ctx, db, pos[0])
			if err != nil {
				return err
			}
			return listKeys(ctx, db, app, stdout)
		})
	case "revoke":
		grace := fs.Duration("grace", 0, "how long the key goes on working")
		pos, err := parse(fs, args, 2, "APP KEY [-grace DURATION]")
		if err != nil {
			return err
		}
		if *grace < 0 || *grace > store.MaxKeyGrace {
			return fmt.Errorf("app key revoke: -grace must be from 0s to %s, not %s", store.MaxKeyGrace, *grace)
		}
		return revoke(ctx, environ, pos[0], pos[1], *grace, stdout)
	}
	return fmt.Errorf("app key: unknown subcommand %q\n%s", sub, usage)
}

func revoke(ctx context.Context, environ []string, appArg, keyArg string, grace time.Duration, stdout io.Writer) error {
	d, err := chime.Open(ctx, environ, "to revoke a key: coordinators hear of revocations through Redis")
	if err != nil {
		return err
	}
	defer d.Close()
	if err := store.Migrate(ctx, d.DB); err != nil {
		return err
	}
	app, err := findApp(ctx, d.DB, appArg)
	if err != nil {
		return err
	}
	k, err := findKey(ctx, d.DB, app, keyArg)
	if err != nil {
		return err
	}
	k, err = store.RevokeKey(ctx, d.DB, app.ID, k.ID, time.Now(), grace)
	if err != nil {
		return err
	}
	// Announced again for a key revoked before: running the command again
	// after a failed announcement reaches the coordinators.
	if err := apikey.Announce(ctx, d.Redis, d.Config.KeysChannel(), k.Hash); err != nil {
		return fmt.Errorf("key %d is revoked, but coordinators may accept it for %s more (their cache); run this again: %w", k.ID, apikey.DefaultTTL, err)
	}
	if k.RevokedAt != nil {
		fmt.Fprintf(stdout, "key %d (%s) of app %d %q revoked at %s\n", k.ID, k.Prefix, app.ID, app.Name, stamp(k.RevokedAt))
	} else {
		fmt.Fprintf(stdout, "key %d (%s) of app %d %q expires at %s\n", k.ID, k.Prefix, app.ID, app.Name, stamp(k.ExpiresAt))
	}
	return nil
}

// withDB runs fn on the migrated database of MYSQL_DSN.
func withDB(ctx context.Context, environ []string, fn func(*gorm.DB) error) error {
	d, err := openDB(ctx, environ)
	if err != nil {
		return err
	}
	defer d.Close()
	return fn(d.DB)
}

// findApp finds the app arg names: digits are an app's ID, anything else
// its name.
func findApp(ctx context.Context, db *gorm.DB, arg string) (store.App, error) {
	if id, err := strconv.ParseInt(arg, 10, 64); err == nil {
		app, err := store.FindApp(ctx, db, id)
		if errors.Is(err, store.ErrNotFound) {
			return app, fmt.Errorf("no app has ID %d (chime app list shows them)", id)
		}
		return app, err
	}
	app, err := store.FindAppNamed(ctx, db, arg)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return app, fmt.Errorf("no app is named %q (chime app list shows them)", arg)
	case errors.Is(err, store.ErrAmbiguous):
		return app, fmt.Errorf("more than one app is named %q: name it by its ID (chime app list shows them)", arg)
	}
	return app, err
}

// findKey finds app's key arg names: digits are a key's ID, a whole key is
// found by its hash, and anything else must be a prefix as listed.
func findKey(ctx context.Context, db *gorm.DB, app store.App, arg string) (store.APIKey, error) {
	var k store.APIKey
	var err error
	switch id, perr := strconv.ParseInt(arg, 10, 64); {
	case perr == nil:
		k, err = store.FindKey(ctx, db, app.ID, id)
	case len(arg) > store.KeyPrefixLen && strings.HasPrefix(arg, store.KeyScheme):
		k, err = store.FindKeyByHash(ctx, db, app.ID, store.HashKey(arg))
	case len(arg) == store.KeyPrefixLen && strings.HasPrefix(arg, store.KeyScheme):
		k, err = store.FindKeyByPrefix(ctx, db, app.ID, arg)
	default:
		return k, fmt.Errorf("%q is not a key ID, a key prefix (%s and 8 hex digits) or a key", arg, store.KeyScheme)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return k, fmt.Errorf("app %d %q has no key %s (chime app key list %d shows them)", app.ID, app.Name, shortKey(arg), app.ID)
	case errors.Is(err, store.ErrAmbiguous):
		return k, fmt.Errorf("app %d %q has more than one key starting %s: name it by its ID", app.ID, app.Name, arg)
	}
	return k, err
}

// shortKey shows at most a key's prefix: a whole key given on the command
// line is not repeated in an error.
func shortKey(arg string) string {
	if len(arg) > store.KeyPrefixLen && strings.HasPrefix(arg, store.KeyScheme) {
		return arg[:store.KeyPrefixLen] + "…"
	}
	return arg
}

func listApps(ctx context.Context, db *gorm.DB, out io.Writer) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCREATED\tNAME")
	for after := int64(0); ; {
		apps, err := store.Apps(ctx, db, after, 1000)
		if err != nil {
			return err
		}
		for _, a := range apps {
			fmt.Fprintf(tw, "%d\t%s\t%s\n", a.ID, stamp(&a.CreatedAt), a.Name)
		}
		if len(apps) < 1000 {
			return tw.Flush()
		}
		after = apps[len(apps)-1].ID
	}
}

func listKeys(ctx context.Context, db *gorm.DB, app store.App, out io.Writer) error {
	now := time.Now()
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPREFIX\tSTATE\tCREATED\tLAST USED\tEXPIRES\tREVOKED\tNAME")
	for after := int64(0); ; {
		keys, err := store.Keys(ctx, db, app.ID, after, 1000)
		if err != nil {
			return err
		}
		for _, k := range keys {
			state := "active"
			switch {
			case k.RevokedAt != nil:
				state = "revoked"
			case !k.Active(now):
				state = "expired"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Prefix, state, stamp(&k.CreatedAt),
				stamp(k.LastUsedAt), stamp(k.ExpiresAt), stamp(k.RevokedAt), k.Name)
		}
		if len(keys) < 1000 {
			return tw.Flush()
		}
		after = keys[len(keys)-1].ID
	}
}

// stamp shows an instant to the second in UTC, or "-".
func stamp(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func oneName(args []string, form string) (string, error) {
	if len(args) != 1 {
		return "", errors.New("usage: chime " + form)
	}
	if args[0] == "" {
		return "", errors.New("app create: the name must not be empty")
	}
	if err := store.CheckName(args[0]); err != nil {
		return "", fmt.Errorf("app create: the name %v", err)
	}
	return args[0], nil
}

// parse reads flags that may come before or after the positional arguments
// and checks their count.
func parse(fs *flag.FlagSet, args []string, positional int, form string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%s: %v (usage: chime %s %s)", fs.Name(), err, fs.Name(), form)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) != positional {
		return nil, fmt.Errorf("usage: chime %s %s", fs.Name(), form)
	}
	return pos, nil
}
