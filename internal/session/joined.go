package session

import "encoding/json"

// Joined returns msgs joined by commas, the inside of a JSON array, and
// whether it could do so without copying: when a store read the history
// as one buffer and handed out the messages as views of it (both stores
// do, see [State.Messages]), any run of consecutive messages already sits
// in that buffer with one comma between each, and the result is a view
// of it. A turn then builds its request with a single copy of the
// history however deep it is (see #14), and so does a history strategy
// that sends only the last turns: Joined(st.Messages[from:]).
//
// When the messages are not adjacent views (a store or decorator that
// builds them one by one, or a slice the caller assembled) ok is false
// and the caller joins them itself. An empty msgs gives nil, true.
func Joined(msgs []json.RawMessage) (joined json.RawMessage, ok bool) {
	if len(msgs) == 0 {
		return nil, true
	}
	n := len(msgs[0])
	for i := 1; i < len(msgs); i++ {
		prev, next := msgs[i-1], msgs[i]
		// prev must be followed, inside its own backing array, by a comma
		// and then next's first byte: same array, adjacent. Comparing
		// element addresses is how Go tells two slices share an array.
		if len(next) == 0 || cap(prev) < len(prev)+2 {
			return nil, false
		}
		ext := prev[:len(prev)+2]
		if ext[len(prev)] != ',' || &ext[len(prev)+1] != &next[0] {
			return nil, false
		}
		n += 1 + len(next)
	}
	if cap(msgs[0]) < n {
		return nil, false
	}
	return msgs[0][:n:n], true
}

// JoinMessages returns msgs joined by commas in one buffer whose
// messages are views of it, so [Joined] of any run of them is free. A
// store that reads messages one by one calls it once per read; an empty
// msgs gives nil.
func JoinMessages(msgs [][]byte) []json.RawMessage {
	if len(msgs) == 0 {
		return nil
	}
	n := len(msgs) - 1
	for _, m := range msgs {
		n += len(m)
	}
	buf := make([]byte, 0, n)
	out := make([]json.RawMessage, len(msgs))
	for i, m := range msgs {
		if i > 0 {
			buf = append(buf, ',')
		}
		start := len(buf)
		buf = append(buf, m...)
		out[i] = buf[start:len(buf):n]
	}
	return out
}
