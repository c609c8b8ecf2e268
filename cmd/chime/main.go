// Command chime is Chime's all-in-one tool:
//
//	chime demo [-users N] [-workers N] [-lead D]   run everything in one process
//	chime app create NAME                          create an app, print its API key
//	chime migrate                                  apply schema migrations
//	chime secret-key new ID                        print a new CHIME_SECRET_KEYS entry
//
// Configuration is read from the environment, as for the coordinator.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/chime-dev/chime"
	"github.com/chime-dev/chime/api"
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
  chime demo [-users N] [-workers N] [-lead DURATION] [-groups N]
  chime app create NAME
  chime migrate
  chime secret-key new ID`

func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("a command is required\n" + usage)
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
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if opt.Users < 1 || opt.Workers < 1 || opt.Groups < 1 {
			return errors.New("demo: -users, -workers and -groups must be at least 1")
		}
		return demo.Run(ctx, opt, environ, stdout, stderr)
	case "app":
		if len(args) != 3 || args[1] != "create" {
			return errors.New("usage: chime app create NAME")
		}
		d, err := openDB(ctx, environ)
		if err != nil {
			return err
		}
		defer d.Close()
		app, key, err := api.CreateApp(ctx, d.DB, args[2])
		if err != nil {
			return fmt.Errorf("create app: %w", err)
		}
		fmt.Fprintf(stdout, "app %d %q\napi key (shown once): %s\n", app.ID, app.Name, key)
		return nil
	case "secret-key":
		if len(args) != 3 || args[1] != "new" {
			return errors.New("usage: chime secret-key new ID")
		}
		k, err := seal.NewKey(args[2])
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, k)
		return nil
	case "migrate":
		d, err := openDB(ctx, environ)
		if err == nil {
			d.Close()
		}
		return err
	}
	return fmt.Errorf("unknown command %q\n%s", args[0], usage)
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
