package mcptools

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// maxNameLen is the longest tool name the Messages API accepts:
// ^[a-zA-Z0-9_-]{1,64}$.
const maxNameLen = 64

// namespaceSep joins a server name and a tool name.
const namespaceSep = "__"

// A toolKey identifies a tool by its server and its MCP name.
type toolKey struct {
	server, tool string
}

// assignNames gives each tool the name Claude sees. A tool keeps its own name
// (sanitised) unless another server has a tool with the same name; then both
// become <server>__<tool>. Names that would still clash, or that are too
// long, get a hash of the server and tool names, so the result depends only
// on the input, never on order of discovery.
//
// tools must list servers in a fixed order; the result maps each final name
// to its tool.
func assignNames(tools []toolKey) map[string]toolKey {
	servers := make(map[string]map[string]bool) // sanitised tool name → servers having it
	for _, k := range tools {
		n := sanitizeName(k.tool)
		if servers[n] == nil {
			servers[n] = make(map[string]bool)
		}
		servers[n][k.server] = true
	}
	names := make([]string, len(tools))
	count := make(map[string]int)
	for i, k := range tools {
		n := sanitizeName(k.tool)
		if len(servers[n]) > 1 {
			n = namespacedName(k)
		}
		n = fitName(n, k)
		names[i] = n
		count[n]++
	}
	out := make(map[string]toolKey, len(tools))
	for i, k := range tools {
		n := names[i]
		if count[n] > 1 {
			// One server lists "a.b" and "a_b", or truncation met another name.
			n = hashedName(n, k)
		}
		if _, dup := out[n]; dup {
			continue // the same tool listed twice
		}
		out[n] = k
	}
	return out
}

// namespacedName is <server>__<tool>, sanitised and fitted to maxNameLen.
func namespacedName(k toolKey) string {
	return fitName(sanitizeName(k.server)+namespaceSep+sanitizeName(k.tool), k)
}

// sanitizeName replaces each character Claude does not accept in a tool name
// with "_".
func sanitizeName(s string) string {
	if s == "" {
		return "_"
	}
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// fitName shortens a name over maxNameLen to a prefix and a hash of k.
func fitName(n string, k toolKey) string {
	if len(n) <= maxNameLen {
		return n
	}
	return hashedName(n, k)
}

// hashedName is a prefix of n, "_" and 8 hex digits of a hash of k: at most
// maxNameLen bytes, and distinct for distinct tools.
func hashedName(n string, k toolKey) string {
	sum := sha256.Sum256([]byte(k.server + "\x00" + k.tool))
	h := hex.EncodeToString(sum[:4])
	if len(n) > maxNameLen-len(h)-1 {
		n = n[:maxNameLen-len(h)-1]
	}
	return n + "_" + h
}

// validName reports whether Claude accepts n as a tool name.
func validName(n string) bool {
	return n != "" && len(n) <= maxNameLen && sanitizeName(n) == n
}
