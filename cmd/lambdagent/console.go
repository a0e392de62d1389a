//go:build !lambda

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/lambdagent/lambdagent"
	"github.com/lambdagent/lambdagent/internal/console"
	"github.com/lambdagent/lambdagent/internal/httpserver"
)

// startConsole serves the console (see #18) on a listener of its own,
// when the mode serves one: the page at /console/ and the runtime's API
// beside it, so that the page's requests are same-origin. It returns a
// function that waits for that server to stop, which it does when ctx
// ends.
func startConsole(ctx context.Context, cfg config, dev bool, rt *lambdagent.Runtime, log *slog.Logger, stdout io.Writer) (wait func(), err error) {
	addr, on := cfg.consoleAddr(dev)
	if !on {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil && cfg.ConsoleAddr == "" {
		// The default port is taken (another dev): any free one will do,
		// the URL is printed.
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		return nil, fmt.Errorf("listen on %s for the console (LAMBDAGENT_CONSOLE_ADDR): %w", addr, err)
	}
	url := "http://" + ln.Addr().String() + console.Path
	fmt.Fprintf(stdout, "console: %s\n", url)
	log.Info("serving the console", "url", url)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = httpserver.Serve(ctx, ln, console.Handler(rt.Handler()), httpserver.Config{
			Logger: log.With("server", "console"), AllowedHosts: cfg.Options.AllowedHosts,
		})
	}()
	return func() { <-done }, nil
}
