package auth

import "fmt"

// DefaultTenant is the tenant of mode none, of events that carry none,
// and of data written before tenants existed (see #13).
const DefaultTenant = "default"

// MaxTenantLen is the longest tenant name, in bytes.
const MaxTenantLen = 64

// ValidTenant reports whether name can be a tenant: 1 to [MaxTenantLen]
// bytes of ASCII letters, digits and "-_.", and not "." or "..". Tenants
// become part of every store key and sit inside Redis Cluster hash tags,
// so ':' (our key separator) and '{' '}' (hash tag delimiters) are out,
// as is anything that would need escaping in a log, a metric label or a
// file name.
func ValidTenant(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrInvalidTenant)
	}
	if len(name) > MaxTenantLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidTenant, MaxTenantLen)
	}
	if name == "." || name == ".." {
		return fmt.Errorf("%w: %q", ErrInvalidTenant, name)
	}
	for i := 0; i < len(name); i++ {
		if !tenantByte(name[i]) {
			return fmt.Errorf("%w: byte %q at %d not allowed (use letters, digits and -_.)", ErrInvalidTenant, name[i], i)
		}
	}
	return nil
}

func tenantByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.'
}
