package mcptools

import "errors"

var (
	// ErrInvalidConfig means a config could not be parsed or is missing
	// something; the wrapping error names the server and field.
	ErrInvalidConfig = errors.New("mcptools: invalid config")
	// ErrClosed means the Toolset was closed; Run reports it as a tool error.
	ErrClosed = errors.New("mcptools: toolset closed")
)
