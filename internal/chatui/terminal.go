package chatui

import (
	"errors"
	"io"
	"os"

	"golang.org/x/term"
)

var (
	_ LineReader = (*term.Terminal)(nil)
	_ LineReader = (*terminalLines)(nil)
)

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// TerminalLines reads lines from the terminal in, echoing to out, with
// line editing (arrows, Home/End, Ctrl-A/E/K/U/W, Alt-arrows by word)
// and a history of earlier lines (Up/Down). in is put in raw mode only
// while a line is read. Ctrl-D on an empty line, or Ctrl-C, ends the
// input (io.EOF).
func TerminalLines(in *os.File, out io.Writer, prompt string) LineReader {
	return &terminalLines{fd: int(in.Fd()), t: term.NewTerminal(struct {
		io.Reader
		io.Writer
	}{in, out}, prompt)}
}

type terminalLines struct {
	fd int
	t  *term.Terminal
}

func (l *terminalLines) ReadLine() (string, error) {
	st, err := term.MakeRaw(l.fd)
	if err != nil {
		return "", err
	}
	defer term.Restore(l.fd, st)
	if w, h, err := term.GetSize(l.fd); err == nil && w > 0 {
		_ = l.t.SetSize(w, h)
	}
	line, err := l.t.ReadLine()
	if errors.Is(err, term.ErrPasteIndicator) {
		err = nil // a pasted line is a line
	}
	return line, err
}
