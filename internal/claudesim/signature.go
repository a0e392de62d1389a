package claudesim

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"hash"
)

// defaultSigningKey signs thinking blocks when Config.SigningKey is empty,
// so that two Servers (say, before and after a simulated restart) accept
// each other's blocks.
var defaultSigningKey = []byte("claudesim thinking signature key")

// sigMagic starts every signature. It changed from "csim1" when
// signatures began to carry the prefix binding: older ones fail to verify.
const sigMagic = "csim2"

// sign returns the signature of a thinking block whose full reasoning is
// raw, whose returned text is shown ("" when the display is omitted), and
// whose prefix (the request's system, tools and every block before it,
// see [binder]) has the MAC prefix.
//
// Like the real signature, it carries the full reasoning (here in clear,
// base64-encoded), so a block with omitted text still verifies, and the
// binding of the block to its conversation; the HMAC covers the
// reasoning, the returned text and the binding, so changing any of them,
// or the signature, fails verification.
func sign(key []byte, raw, shown string, prefix []byte) string {
	buf := make([]byte, 0, len(sigMagic)+binary.MaxVarintLen64+len(raw)+2*sha256.Size)
	buf = append(buf, sigMagic...)
	buf = binary.AppendUvarint(buf, uint64(len(raw)))
	buf = append(buf, raw...)
	buf = append(buf, prefix...)
	buf = append(buf, mac(key, raw, shown, prefix)...)
	return base64.StdEncoding.EncodeToString(buf)
}

// verify reports whether sig is a signature this key made for a block
// showing shown, and returns the block's full reasoning and the MAC of
// the prefix the block was made after, for the caller to compare with
// the request's.
func verify(key []byte, shown, sig string) (raw string, prefix []byte, ok bool) {
	buf, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || len(buf) < len(sigMagic) || string(buf[:len(sigMagic)]) != sigMagic {
		return "", nil, false
	}
	buf = buf[len(sigMagic):]
	n, k := binary.Uvarint(buf)
	if k <= 0 || n > uint64(len(buf)-k) {
		return "", nil, false
	}
	buf = buf[k:]
	raw, rest := string(buf[:n]), buf[n:]
	if len(rest) != 2*sha256.Size {
		return "", nil, false
	}
	prefix, sum := rest[:sha256.Size], rest[sha256.Size:]
	if !hmac.Equal(sum, mac(key, raw, shown, prefix)) {
		return "", nil, false
	}
	return raw, prefix, true
}

func mac(key []byte, raw, shown string, prefix []byte) []byte {
	h := hmac.New(sha256.New, key)
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(raw)))])
	h.Write([]byte(raw))
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(shown)))])
	h.Write([]byte(shown))
	h.Write(prefix)
	return h.Sum(nil)
}

// A binder computes the MAC of a conversation prefix as the API's prefix
// check sees it: the top-level system prompt, the tools, then every
// content block in order with its role. Message boundaries do not count
// (the API combines consecutive same-role messages), nor does
// cache_control (a request moves its breakpoints every turn), nor the
// form of a text (a string content and one text block are the same
// text). Everything else does, thinking signatures included. One HMAC
// runs over the whole request: Sum does not disturb it, so the prefix of
// every block costs one pass.
type binder struct {
	h   hash.Hash
	buf [binary.MaxVarintLen64]byte
}

func newBinder(key []byte) *binder { return &binder{h: hmac.New(sha256.New, key)} }

func (b *binder) field(s string) {
	b.h.Write(b.buf[:binary.PutUvarint(b.buf[:], uint64(len(s)))])
	b.h.Write([]byte(s))
}

func (b *binder) bytesField(p []byte) {
	b.h.Write(b.buf[:binary.PutUvarint(b.buf[:], uint64(len(p)))])
	b.h.Write(p)
}

// sum is the MAC of everything written so far.
func (b *binder) sum() []byte { return b.h.Sum(nil) }

// system writes the request's system prompt and tools.
func (b *binder) head(system []*block, tools []*tool) {
	b.field("system")
	for _, s := range system {
		b.field(s.text)
	}
	b.field("tools")
	for _, t := range tools {
		b.bytesField(t.canon)
	}
	b.field("messages")
}

// block writes one content block of a message of role.
func (b *binder) block(role string, bl *block) {
	b.field(role)
	b.field(bl.typ)
	switch bl.typ {
	case "text":
		b.field(bl.text)
	case "tool_use":
		b.field(bl.id)
		b.field(bl.name)
		b.bytesField(bl.input)
	case "tool_result":
		b.field(bl.toolUseID)
		if bl.isError {
			b.field("error")
		} else {
			b.field("")
		}
		b.field(bl.text)
	case "thinking":
		b.field(bl.thinking)
		b.field(bl.signature)
	default:
		b.bytesField(bl.raw)
	}
}
