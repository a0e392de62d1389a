package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/lambdagent/lambdagent"
	"github.com/lambdagent/lambdagent/internal/auth"
	"github.com/lambdagent/lambdagent/internal/redisconn"
	"github.com/lambdagent/lambdagent/internal/session/filestore"
	"github.com/lambdagent/lambdagent/internal/session/redisstore"
)

const keysUsage = `Usage:
  lambdagent keys create -tenant NAME [-name LABEL] [-rpm N] [-itpm N] [-otpm N] [-file]
  lambdagent keys list
  lambdagent keys revoke ID

API keys for LAMBDAGENT_AUTH=key, kept as hashes in the configured store
(REDIS_URL, else the embedded file LAMBDAGENT_DB, which only one process may
open at a time: stop the server first). create prints the new key once, on
the first line of its output; -file also prints the line for a
LAMBDAGENT_API_KEYS file. list never prints secrets. A revoked key is
refused by every instance within 5 seconds. -rpm, -itpm and -otpm give the
key its own requests, input tokens and output tokens per minute, on top of
the tenant's and model's limits; they are enforced only when the rate
limiter is on (Redis and some LAMBDAGENT_RPM/ITPM/…/BUDGET/ADMIN_TOKEN set).
`

// runKeys is `lambdagent keys`.
func runKeys(ctx context.Context, args []string, cfg config, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, keysUsage)
		return fmt.Errorf("keys: no command given: %w", errUsage)
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("keys "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, keysUsage) }
	tenant := fs.String("tenant", "", "the tenant the key acts for (create)")
	name := fs.String("name", "", "a label for people, such as ci (create)")
	file := fs.Bool("file", false, "also print the key's LAMBDAGENT_API_KEYS line (create)")
	var lim auth.Limits
	fs.IntVar(&lim.RPM, "rpm", 0, "the key's own requests per minute; 0 is none (create)")
	fs.IntVar(&lim.ITPM, "itpm", 0, "the key's own input tokens per minute; 0 is none (create)")
	fs.IntVar(&lim.OTPM, "otpm", 0, "the key's own output tokens per minute; 0 is none (create)")
	switch cmd {
	case "create", "list", "revoke":
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, keysUsage)
		return nil
	default:
		fmt.Fprint(stderr, keysUsage)
		return fmt.Errorf("keys: unknown command %q: %w", cmd, errUsage)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("keys %s: %w", cmd, errUsage)
	}
	wantArgs := 0
	if cmd == "revoke" {
		wantArgs = 1
	}
	if fs.NArg() != wantArgs {
		fs.Usage()
		return fmt.Errorf("keys %s: want %d argument(s), got %d: %w", cmd, wantArgs, fs.NArg(), errUsage)
	}
	if cmd == "create" {
		if *tenant == "" {
			fs.Usage()
			return fmt.Errorf("keys create: -tenant is required: %w", errUsage)
		}
		if err := auth.ValidTenant(*tenant); err != nil {
			return fmt.Errorf("keys create: -tenant: %v: %w", err, errUsage)
		}
		if lim.RPM < 0 || lim.ITPM < 0 || lim.OTPM < 0 {
			return fmt.Errorf("keys create: -rpm, -itpm and -otpm must not be negative: %w", errUsage)
		}
	} else if *tenant != "" || *name != "" || *file || lim != (auth.Limits{}) {
		return fmt.Errorf("keys %s: -tenant, -name, -rpm, -itpm, -otpm and -file are for create: %w", cmd, errUsage)
	}

	reg, closeStore, err := openKeyRegistry(cfg)
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	defer closeStore()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	switch cmd {
	case "create":
		plain, k, err := reg.CreateWithLimits(ctx, *tenant, *name, lim)
		if err != nil {
			return fmt.Errorf("keys create: %w", err)
		}
		fmt.Fprintln(stdout, plain)
		if *file {
			fmt.Fprintln(stdout, auth.FileLine(k))
		}
		fmt.Fprintf(stderr, "created key %s for tenant %s; the key is shown only this once: send it as Authorization: Bearer <key>\n", k.ID, k.Tenant)
	case "list":
		keys, err := reg.List(ctx)
		if err != nil {
			return fmt.Errorf("keys list: %w", err)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTENANT\tNAME\tCREATED\tREVOKED")
		for _, k := range keys {
			revoked := "-"
			if k.Revoked != nil {
				revoked = k.Revoked.UTC().Format(time.RFC3339)
			}
			name := k.Name
			if name == "" {
				name = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, k.Tenant, name, k.Created.UTC().Format(time.RFC3339), revoked)
		}
		return tw.Flush()
	case "revoke":
		id := fs.Arg(0)
		if err := reg.Revoke(ctx, id); err != nil {
			if errors.Is(err, auth.ErrNotFound) {
				return fmt.Errorf("keys revoke: no stored key %.32q (see lambdagent keys list)", id)
			}
			return fmt.Errorf("keys revoke: %w", err)
		}
		fmt.Fprintf(stderr, "revoked key %s; every instance refuses it within 5 seconds\n", id)
	}
	return nil
}

// openKeyRegistry opens the store the server is configured with (Redis,
// else the embedded file) and a key Registry over it, without a cache:
// the CLI reads what is stored.
func openKeyRegistry(cfg config) (*auth.Registry, func(), error) {
	o := cfg.Options
	var kv auth.KV
	var closeStore func()
	if o.RedisURL != "" {
		rdb, _, err := redisconn.New(redisconn.Config{URL: o.RedisURL, CA: o.RedisCA, DialTimeout: 5 * time.Second})
		if err != nil {
			return nil, nil, err
		}
		prefix := o.RedisPrefix
		if prefix == "" {
			prefix = lambdagent.DefaultRedisPrefix
		}
		st, err := redisstore.New(rdb, redisstore.Config{Prefix: prefix})
		if err != nil {
			rdb.Close()
			return nil, nil, err
		}
		kv, closeStore = st, func() { rdb.Close() }
	} else {
		path := o.DBPath
		if path == "" {
			path = lambdagent.DefaultDBPath
		}
		st, err := filestore.Open(path, filestore.Config{SweepInterval: -1})
		if err != nil {
			return nil, nil, err
		}
		kv, closeStore = st, func() { st.Close() }
	}
	reg, err := auth.NewRegistry(kv, auth.RegistryConfig{CacheTTL: -1})
	if err != nil {
		closeStore()
		return nil, nil, err
	}
	return reg, closeStore, nil
}
