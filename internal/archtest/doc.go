// Package archtest holds the tests that keep the module's architecture
// true as it grows, as tailscale's tstest/deptest does: the rules that
// the stores know nothing of turns, that the turn knows no transport and
// no Redis, that the simulator shares no code with the client, and that
// the Lambda bootstrap links none of the developer-only modes would
// otherwise live only in prose. It also checks that every package says
// what it is for in one package doc comment.
//
// The package has no code of its own; `go test ./internal/archtest` is
// the whole of it. Its tests read the module with `go list`, so they need
// the go command, as `go test` itself does.
package archtest
