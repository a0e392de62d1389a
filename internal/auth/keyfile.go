package auth

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// The static key file lets a deployment without a writable store (a
// read-only Lambda, say) accept API keys: LAMBDAGENT_API_KEYS names it.
// It holds hashes, never secrets, so it may sit in the deployment
// package or an environment variable without giving a key away.
//
// The format is JSON lines: one key per line as
//
//	{"id":"k2mz7q4rtx3a","tenant":"acme","name":"ci","sha256":"<64 hex>","limits":{"rpm":60}}
//
// with name and limits optional. Blank lines and lines starting with '#'
// are skipped. Unknown fields are errors, so a typo such as "sha265"
// cannot silently disable a key. [FileLine] prints a key in this form;
// `lambdagent keys create` can print it for a key it makes, for the
// operator to paste into the file. To revoke a static key, delete its
// line and redeploy.

// fileKey is a line of the static key file.
type fileKey struct {
	ID     string `json:"id"`
	Tenant string `json:"tenant"`
	Name   string `json:"name,omitempty"`
	Hash   string `json:"sha256"`
	Limits Limits `json:"limits,omitzero"`
}

// maxKeyFileLine bounds a line of the key file; a real one is ~150 bytes.
const maxKeyFileLine = 4 << 10

// ParseKeyFile reads a static key file (see the format above). It
// returns every key in file order, or an error wrapping [ErrKeyFile] that
// names the first bad line; a hash is not a secret, but the error quotes
// no field values beyond the id.
func ParseKeyFile(data []byte) ([]Key, error) {
	var keys []Key
	seen := map[string]int{}
	for n := 1; len(data) > 0; n++ {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if len(line) > maxKeyFileLine {
			return nil, fmt.Errorf("%w: line %d: longer than %d bytes", ErrKeyFile, n, maxKeyFileLine)
		}
		var fk fileKey
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&fk); err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrKeyFile, n, err)
		}
		if dec.InputOffset() != int64(len(line)) {
			return nil, fmt.Errorf("%w: line %d: text after the JSON object", ErrKeyFile, n)
		}
		k := Key{ID: fk.ID, Tenant: fk.Tenant, Name: fk.Name, Hash: fk.Hash, Limits: fk.Limits}
		if err := k.validate(); err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrKeyFile, n, err)
		}
		if prev, ok := seen[k.ID]; ok {
			return nil, fmt.Errorf("%w: line %d: key %s already on line %d", ErrKeyFile, n, k.ID, prev)
		}
		seen[k.ID] = n
		keys = append(keys, k)
	}
	return keys, nil
}

// FileLine returns k as one line of the static key file, without a
// trailing newline. It drops Created and Revoked: a revoked key belongs
// in no key file.
func FileLine(k Key) string {
	b, err := json.Marshal(fileKey{ID: k.ID, Tenant: k.Tenant, Name: k.Name, Hash: k.Hash, Limits: k.Limits})
	if err != nil {
		panic("auth: marshal key: " + err.Error()) // only strings and ints: cannot fail
	}
	return string(b)
}
