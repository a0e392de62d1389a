// Package redact cuts secrets out of strings before they reach a log line,
// an error message or an HTTP answer (see #13).
//
// Two kinds of secret leak: the password of a URL (REDIS_URL, an MCP
// server's URL, ANTHROPIC_BASE_URL with user information), which parsers
// quote whole in their errors, and values we know are secret (API keys,
// tokens, header values), which can turn up anywhere a library prints what
// it was given. [URL] hides the first kind wherever it appears in a
// string; a [Set] remembers the second and cuts them. [Handler] applies
// both to everything a logger writes, as a last line of defence: code
// should still avoid printing secrets in the first place.
package redact

import (
	"slices"
	"strings"
)

// Mask replaces a cut secret.
const Mask = "[REDACTED]"

// MinLen is the shortest value a [Set] treats as a secret: shorter values
// ("1", "true") would be cut from every message.
const MinLen = 6

// URL hides the user information (name and password) of every URL in s:
// "redis://u:p@host:6379/0" becomes "redis://…@host:6379/0". It works on
// strings that do not parse as URLs (a bad escape, say), and on messages
// that quote one.
func URL(s string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "://")
		if i < 0 {
			break
		}
		// User information ends at the last '@' before the URL ends (a
		// quote or a space). Looking past the first '/' over-cuts a path
		// holding an '@', and catches a password holding a '/'.
		rest := s[i+3:]
		end := strings.IndexAny(rest, "\"'` \t\r\n")
		if end < 0 {
			end = len(rest)
		}
		at := strings.LastIndex(rest[:end], "@")
		b.WriteString(s[:i+3])
		if at >= 0 {
			b.WriteString("…")
			rest = rest[at:]
		}
		s = rest
	}
	if b.Len() == 0 {
		return s
	}
	b.WriteString(s)
	return b.String()
}

// A Set is a list of secret values to cut from strings. Its zero value is
// empty and ready to use. Add and String must not run concurrently; build
// a Set, then share it read-only.
type Set struct {
	values []string // longest first, so that a token inside a longer value is cut whole
}

// Add remembers secret values. Values shorter than [MinLen] and repeats are
// ignored. For a URL, the password of its user information is added too,
// so that a message that quotes it unescaped or in part is cut.
func (s *Set) Add(values ...string) {
	for _, v := range values {
		s.add(v)
		if pw, ok := password(v); ok {
			s.add(pw)
		}
	}
}

func (s *Set) add(v string) {
	if len(v) < MinLen || slices.Contains(s.values, v) {
		return
	}
	i, _ := slices.BinarySearchFunc(s.values, v, func(a, b string) int { return len(b) - len(a) })
	s.values = slices.Insert(s.values, i, v)
}

// Len reports how many values s holds.
func (s *Set) Len() int { return len(s.values) }

// Merge adds every value of o to s.
func (s *Set) Merge(o Set) {
	for _, v := range o.values {
		s.add(v)
	}
}

// String returns msg with every value of s replaced by [Mask] and the user
// information of every URL hidden.
func (s *Set) String(msg string) string {
	for _, v := range s.values {
		msg = strings.ReplaceAll(msg, v, Mask)
	}
	return URL(msg)
}

// password returns the password of a URL's user information, found
// without parsing (the URL may not parse).
func password(u string) (string, bool) {
	i := strings.Index(u, "://")
	if i < 0 {
		return "", false
	}
	rest := u[i+3:]
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return "", false
	}
	_, pw, ok := strings.Cut(rest[:at], ":")
	return pw, ok && pw != ""
}

// Error returns err with its message passed through s.String. errors.Is
// and errors.As still see err; nil stays nil.
func (s *Set) Error(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if red := s.String(msg); red != msg {
		return &redacted{msg: red, err: err}
	}
	return err
}

// A redacted error prints msg, its cause's message with secrets cut.
type redacted struct {
	msg string
	err error
}

func (e *redacted) Error() string { return e.msg }
func (e *redacted) Unwrap() error { return e.err }
