// Command chime is Chime's all-in-one tool:
//
//	chime demo [-users N] [-workers N] [-lead D]   run everything in one process
//	           [-console]                          and keep it running, console open
//	chime app create NAME                          create an app, print its API key
//	chime app list                                 list the apps
//	chime app key create APP [-name NAME]          add an API key, print it
//	chime app key list APP                         list the app's keys
//	chime app key revoke APP KEY [-grace D]        revoke a key (after D)
//	chime app signing-key rotate [-overlap D] APP  new gateway signing key for app ID APP
//	chime console-user create APP EMAIL [-role R]  a console user (editor or viewer), password printed
//	chime migrate                                  apply schema migrations
//	chime secret-key new ID                        print a new CHIME_SECRET_KEYS entry
//	chime secret-key reseal [-batch N]             re-seal stored secrets under the first key
//
// APP is an app's ID or its name; KEY is a key's ID, its prefix (as listed)
// or the key itself. Configuration is read from the environment, as for the
// coordinator: the app commands need MYSQL_DSN, and revoke also REDIS_URL
// (and the coordinators' CHIME_REDIS_PREFIX), to tell every coordinator.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/chime-dev/chime"
	"github.com/chime-dev/chime/demo"
	"github.com/chime-dev/chime/seal"
	"github.com/chime-dev/chime/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "chime:", err)
		os.Exit(1)
	}
}

const usage = `usage:
  chime demo [-users N] [-workers N] [-lead DURATION] [-groups N] [-console] [-prayer]
  chime app create NAME
  chime app list
  chime app key create APP [-name NAME]
  chime app key list APP
  chime app key revoke APP KEY [-grace DURATION]
  chime app signing-key rotate [-overlap DURATION] APP_ID
  chime console-user create APP EMAIL [-role editor|viewer]
  chime migrate
  chime secret-key new ID
  chime secret-key reseal [-batch N]
APP is an app's ID or name; KEY is a key's ID, its prefix or the key itself.`

func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("a command is required\n" + usage) //nolint:staticcheck // ST1005: the usage follows the one-line error
	}
	switch args[0] {
	case "demo":
		fs := flag.NewFlagSet("demo", flag.ContinueOnError)
		fs.SetOutput(stderr)
		var opt demo.Options
		fs.IntVar(&opt.Users, "users", 10000, "users to register")
		fs.IntVar(&opt.Workers, "workers", 2, "workers to run")
		fs.DurationVar(&opt.Lead, "lead", 0, "how far ahead the reminder is due (default 5s)")
		fs.IntVar(&opt.Groups, "groups", 16, "the reminder's group count")
		fs.BoolVar(&opt.Console, "console", false, "keep running afterwards with the console open on the demo's data")
		fs.BoolVar(&opt.Prayer, "prayer", false, "also define a prayer reminder and Jumu'ah over five cities and print their coming fires")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if opt.Users < 1 || opt.Workers < 1 || opt.Groups < 1 {
			return errors.New("demo: -users, -workers and -groups must be at least 1")
		}
		return demo.Run(ctx, opt, environ, stdout, stderr)
	case "app":
		if len(args) > 1 && args[1] == "signing-key" {
			return signingKey(ctx, args[2:], environ, stdout, stderr)
		}
		return runApp(ctx, args[1:], environ, stdout)
	case "secret-key":
		if len(args) >= 2 && args[1] == "reseal" {
			return resealSecrets(ctx, args[2:], environ, stdout, stderr)
		}
		if len(args) != 3 || args[1] != "new" {
			return errors.New("usage: chime secret-key new ID")
		}
		k, err := seal.NewKey(args[2])
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, k)
		return nil
	case "console-user":
		return consoleUser(ctx, args[1:], environ, stdout)
	case "migrate":
		d, err := openDB(ctx, environ)
		if err == nil {
			d.Close()
		}
		return err
	}
	return fmt.Errorf("unknown command %q\n%s", args[0], usage)
}

// resealSecrets seals again, under the first key of CHIME_SECRET_KEYS,
// the web device secrets not sealed with it (stored before sealing, or
// under an older key), so that an older key can be dropped from the list.
func resealSecrets(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("secret-key reseal", flag.ContinueOnError)
	fs.SetOutput(stderr)
	batch := fs.Int("batch", store.DefaultResealBatch, "devices re-sealed per transaction")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *batch < 1 || fs.NArg() > 0 {
		return errors.New("usage: chime secret-key reseal [-batch N], N at least 1")
	}
	d, err := openDB(ctx, environ)
	if err != nil {
		return err
	}
	defer d.Close()
	k := d.Config.Keyring()
	if k == nil {
		return errors.New("secret-key reseal: CHIME_SECRET_KEYS is not set")
	}
	resealed, failed, err := store.ResealDeviceSecrets(ctx, d.DB, k, *batch)
	fmt.Fprintf(stdout, "device secrets re-sealed under key %q: %d\n", k.Current(), resealed)
	if err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("secret-key reseal: %d device secrets do not open with the configured keys (sealed with a key no longer listed, or altered); they were left as they are", failed)
	}
	return nil
}

// signingKey runs "chime app signing-key rotate [-overlap D] APP_ID": a new
// current gateway signing key for the app, its secret printed once. With
// REDIS_URL set the rotation is announced to the gateways at once;
// without, they see it within their key cache's TTL.
func signingKey(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	const use = "usage: chime app signing-key rotate [-overlap DURATION] APP_ID"
	if len(args) == 0 || args[0] != "rotate" {
		return errors.New(use)
	}
	fs := flag.NewFlagSet("signing-key rotate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	overlap := fs.Duration("overlap", -1, "how long the app's other keys stay valid (default CHIME_SIGNING_KEY_OVERLAP; 0s ends them now)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	app, err := strconv.ParseInt(fs.Arg(0), 10, 64)
	if fs.NArg() != 1 || err != nil || app <= 0 {
		return errors.New(use)
	}
	d, err := openDB(ctx, environ)
	if err != nil {
		return err
	}
	defer d.Close()
	if d.Config.RedisURL != "" {
		if d.Redis, err = chime.OpenRedis(ctx, d.Config.RedisURL); err != nil {
			return err
		}
	}
	var o *time.Duration
	if *overlap >= 0 {
		o = overlap
	}
	keys := d.Config.SigningKeys(d.DB, d.Redis, d.Log)
	key, err := keys.Rotate(ctx, app, o, time.Now())
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("rotate signing key: no app %d", app)
	}
	if err != nil {
		return fmt.Errorf("rotate signing key: %w", err)
	}
	fmt.Fprintf(stdout, "app %d signing key %s\nsecret (shown once): %s\n", app, key.ID, key.Secret)
	if d.Redis == nil {
		fmt.Fprintln(stdout, "REDIS_URL is not set: gateways see the rotation within their key cache's TTL")
	}
	return nil
}

// openDB opens MYSQL_DSN and brings its schema up to date.
func openDB(ctx context.Context, environ []string) (*chime.Deps, error) {
	d, err := chime.OpenDB(ctx, environ)
	if err != nil {
		return nil, err
	}
	if err := store.Migrate(ctx, d.DB); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}
