//go:build !lambda

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/lambdagent/lambdagent/internal/chatui"
)

const chatUsage = `Usage:
  lambdagent chat [-url URL] [-session ID] [-key KEY]

An interactive client for one session of a lambdagent server (by default
` + "`lambdagent dev`" + ` at ` + chatui.DefaultURL + `). Type a message, or /help for the
commands (/new, /session, /history, /usage, /quit). When stdin is not a
terminal, lines are read as they come and answers printed bare:
  printf 'hello\n/usage\n' | lambdagent chat -session s1

Flags:
`

// apiKeyUsage describes -key of load and chat. The flag's default is
// empty, not the variable's value, so -h never prints the key.
const apiKeyUsage = "API key, sent as Authorization: Bearer on every request (default: $LAMBDAGENT_API_KEY)"

// runChat is `lambdagent chat`. env reads the environment
// (LAMBDAGENT_API_KEY, the default of -key).
func runChat(ctx context.Context, args []string, env func(string) string, stdin *os.File, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, chatUsage); fs.PrintDefaults() }
	var cfg chatui.Config
	fs.StringVar(&cfg.URL, "url", chatui.DefaultURL, "the server, or its turn endpoint")
	fs.StringVar(&cfg.SessionID, "session", "", "continue this session (default: a new one)")
	fs.StringVar(&cfg.APIKey, "key", "", apiKeyUsage)
	fs.BoolVar(&cfg.Stream, "stream", true, "show answers as they are written (in a terminal; server-sent events)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("chat: %w", errUsage)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("chat: unexpected arguments %v: %w", fs.Args(), errUsage)
	}
	if cfg.APIKey == "" {
		cfg.APIKey = env("LAMBDAGENT_API_KEY")
	}
	out, isFile := stdout.(*os.File)
	cfg.Terminal = isFile && chatui.IsTerminal(stdin) && chatui.IsTerminal(out)
	c, err := chatui.New(cfg)
	if err != nil {
		return err
	}
	in := chatui.PlainLines(stdin)
	if cfg.Terminal {
		in = chatui.TerminalLines(stdin, stdout, "you> ")
	}
	err = c.Run(ctx, in, stdout)
	if errors.Is(err, context.Canceled) {
		return nil // Ctrl-C: leave quietly
	}
	return err
}
