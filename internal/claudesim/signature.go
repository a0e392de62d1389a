package claudesim

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
)

// defaultSigningKey signs thinking blocks when Config.SigningKey is empty,
// so that two Servers (say, before and after a simulated restart) accept
// each other's blocks.
var defaultSigningKey = []byte("claudesim thinking signature key")

const sigMagic = "csim1"

// sign returns the signature of a thinking block whose full reasoning is
// raw and whose returned text is shown ("" when the display is omitted).
//
// Like the real signature, it carries the full reasoning (here in clear,
// base64-encoded), so a block with omitted text still verifies; the HMAC
// covers both the reasoning and the returned text, so changing either, or
// the signature, fails verification.
func sign(key []byte, raw, shown string) string {
	buf := make([]byte, 0, len(sigMagic)+binary.MaxVarintLen64+len(raw)+sha256.Size)
	buf = append(buf, sigMagic...)
	buf = binary.AppendUvarint(buf, uint64(len(raw)))
	buf = append(buf, raw...)
	buf = append(buf, mac(key, raw, shown)...)
	return base64.StdEncoding.EncodeToString(buf)
}

// verify reports whether sig is a signature this key made for a block
// showing shown.
func verify(key []byte, shown, sig string) bool {
	buf, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || len(buf) < len(sigMagic) || string(buf[:len(sigMagic)]) != sigMagic {
		return false
	}
	buf = buf[len(sigMagic):]
	n, k := binary.Uvarint(buf)
	if k <= 0 || n > uint64(len(buf)-k) {
		return false
	}
	buf = buf[k:]
	raw, sum := string(buf[:n]), buf[n:]
	return hmac.Equal(sum, mac(key, raw, shown))
}

func mac(key []byte, raw, shown string) []byte {
	h := hmac.New(sha256.New, key)
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(raw)))])
	h.Write([]byte(raw))
	h.Write([]byte(shown))
	return h.Sum(nil)
}
