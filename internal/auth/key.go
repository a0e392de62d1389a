package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// An API key reads lga_<id>_<secret>. The id is public: it names the key
// in `keys list` and `keys revoke`, in logs and in the store, so a key can
// be found without its secret. The secret is 32 random bytes, base64url
// without padding; only its SHA-256 is ever stored.
const (
	keyPrefix = "lga_"
	// IDLen is the length of a key id: 12 characters of lowercase
	// RFC 4648 base32 (a–z, 2–7), 60 random bits, enough that ids never
	// collide by chance and few enough to type.
	IDLen = 12
	// secretLen is base64.RawURLEncoding.EncodedLen(secretBytes).
	secretBytes = 32
	secretLen   = 43
	// KeyLen is the length of a whole API key.
	KeyLen = len(keyPrefix) + IDLen + 1 + secretLen
	// MaxNameLen bounds a key's label.
	MaxNameLen = 128
)

// Limits are optional per-key caps, on all models together, enforced by
// the rate limiter (internal/ratelimit, Scope "key") in addition to the
// model's and tenant's limits. They apply only when that limiter is on,
// i.e. with Redis and some limit, budget or admin token configured;
// otherwise they are stored but not enforced. Zero means no per-key cap
// (the tenant's and the deployment's limits still apply). "Per minute"
// is per the limiter's window, a minute unless configured otherwise.
type Limits struct {
	// RPM caps requests per minute.
	RPM int `json:"rpm,omitempty"`
	// ITPM caps input tokens per minute.
	ITPM int `json:"itpm,omitempty"`
	// OTPM caps output tokens per minute.
	OTPM int `json:"otpm,omitempty"`
}

func (l Limits) validate() error {
	if l.RPM < 0 || l.ITPM < 0 || l.OTPM < 0 {
		return fmt.Errorf("negative limit %+v", l)
	}
	return nil
}

// A Key is what is kept of an API key: never its secret. The JSON form is
// the record stored under auth:key:<id>, and (without Created and Revoked)
// a line of the static key file.
type Key struct {
	// ID is the key's public id, [IDLen] lowercase base32 characters.
	ID string `json:"id"`
	// Tenant is the tenant every request made with the key acts for.
	Tenant string `json:"tenant"`
	// Name is a label for people, such as "ci" or "alice laptop"; it may
	// be empty.
	Name string `json:"name,omitempty"`
	// Hash is the hex SHA-256 of the key's secret part, the 43 characters
	// after the second '_', as text: `printf %s SECRET | sha256sum`.
	//
	// A plain hash suffices where a password would need a slow KDF: the
	// secret is 256 random bits, so nobody can guess it from the hash,
	// however fast they hash, and Verify stays one cheap hash per request.
	Hash string `json:"sha256"`
	// Created is when the key was made; zero for static keys.
	Created time.Time `json:"created,omitzero"`
	// Revoked is when the key was revoked; nil while it is valid.
	Revoked *time.Time `json:"revoked,omitempty"`
	// Limits are the key's own caps; zero means none.
	Limits Limits `json:"limits,omitzero"`
}

// validate checks a Key read from the store or a key file.
func (k *Key) validate() error {
	if err := validID(k.ID); err != nil {
		return err
	}
	if err := ValidTenant(k.Tenant); err != nil {
		return fmt.Errorf("key %s: %w", k.ID, err)
	}
	if err := validName(k.Name); err != nil {
		return fmt.Errorf("key %s: %w", k.ID, err)
	}
	if len(k.Hash) != 2*sha256.Size || strings.ToLower(k.Hash) != k.Hash {
		return fmt.Errorf("key %s: sha256 is not 64 lowercase hex digits", k.ID)
	}
	if _, err := hex.DecodeString(k.Hash); err != nil {
		return fmt.Errorf("key %s: sha256 is not 64 lowercase hex digits", k.ID)
	}
	if err := k.Limits.validate(); err != nil {
		return fmt.Errorf("key %s: %w", k.ID, err)
	}
	return nil
}

// validName accepts a label of at most MaxNameLen bytes of printable
// UTF-8: it is printed by `keys list` and must not forge its output.
func validName(name string) error {
	if len(name) > MaxNameLen {
		return fmt.Errorf("name longer than %d bytes", MaxNameLen)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("name is not UTF-8")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || (0x80 <= r && r < 0xa0) || r == '\u2028' || r == '\u2029' {
			return fmt.Errorf("name holds control character %U", r)
		}
	}
	return nil
}

func validID(id string) error {
	if len(id) != IDLen {
		return fmt.Errorf("key id is not %d characters", IDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('a' <= c && c <= 'z' || '2' <= c && c <= '7') {
			return fmt.Errorf("key id has a byte outside a-z2-7")
		}
	}
	return nil
}

// ParseKey splits an API key into its id and secret. It checks the form
// exactly (prefix, lengths, alphabets, that the secret decodes to 32
// bytes) and returns [ErrMalformed] otherwise; it does not look the key
// up. The error may name the id, never the secret.
func ParseKey(token string) (id, secret string, err error) {
	if len(token) != KeyLen || !strings.HasPrefix(token, keyPrefix) || token[len(keyPrefix)+IDLen] != '_' {
		return "", "", fmt.Errorf("%w: not an API key (lga_<id>_<secret>)", ErrMalformed)
	}
	id = token[len(keyPrefix) : len(keyPrefix)+IDLen]
	secret = token[len(keyPrefix)+IDLen+1:]
	if err := validID(id); err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if b, err := base64.RawURLEncoding.Strict().DecodeString(secret); err != nil || len(b) != secretBytes {
		return "", "", fmt.Errorf("%w: API key %s: secret is not %d bytes of base64url", ErrMalformed, id, secretBytes)
	}
	return id, secret, nil
}

// newKey returns a fresh plaintext key and its id and hash.
func newKey() (plaintext, id, hash string) {
	id = strings.ToLower(rand.Text()[:IDLen])
	b := make([]byte, secretBytes)
	rand.Read(b) // never fails (crypto/rand)
	secret := base64.RawURLEncoding.EncodeToString(b)
	return keyPrefix + id + "_" + secret, id, hashSecret(secret)
}

func hashSecret(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// matches reports in constant time whether secret is k's.
func (k *Key) matches(secret string) bool {
	return subtle.ConstantTimeCompare([]byte(hashSecret(secret)), []byte(k.Hash)) == 1
}
