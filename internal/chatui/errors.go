package chatui

import "errors"

var (
	// ErrNoKey means the server answered 401 or 403 to a request sent
	// without an API key; [Chat.Run] returns it, since every later
	// request would meet the same answer.
	ErrNoKey = errors.New("chatui: the server wants an API key: pass -key or set LAMBDAGENT_API_KEY")
	// ErrKeyRefused means the server answered 401 or 403 to a request
	// sent with Config.APIKey; [Chat.Run] returns it.
	ErrKeyRefused = errors.New("chatui: the key was refused")
)
