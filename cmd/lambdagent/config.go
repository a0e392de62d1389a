package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lambdagent/lambdagent"
)

// config is every setting the binary reads from the environment, read and
// validated once at startup (see the README's Configuration table): the
// runtime's options, which the library reads (lambdagent.OptionsFromEnv),
// and what only the binary uses.
type config struct {
	Options lambdagent.Options

	Addr       string        // LAMBDAGENT_ADDR, or :$PORT
	LogFormat  string        // LAMBDAGENT_LOG_FORMAT: text or json
	LogLevel   string        // LAMBDAGENT_LOG_LEVEL
	SimLatency time.Duration // LAMBDAGENT_SIM_LATENCY (dev and sim modes)
	// Console is LAMBDAGENT_CONSOLE: "true", "false" or "" (the mode's
	// default: on in dev, off in serve unless ConsoleAddr is set).
	Console     string
	ConsoleAddr string // LAMBDAGENT_CONSOLE_ADDR, or defaultConsoleAddr
	onLambda    bool   // AWS_LAMBDA_RUNTIME_API is set: logs are JSON
}

// loadConfig reads the environment through get (os.Getenv in main).
func loadConfig(get func(string) string) (config, error) {
	var c config
	var err error
	if c.Options, err = lambdagent.OptionsFromEnv(get); err != nil {
		return c, err
	}
	c.onLambda = get("AWS_LAMBDA_RUNTIME_API") != ""
	c.Addr = strings.TrimSpace(get("LAMBDAGENT_ADDR"))
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8080"
		if p := strings.TrimSpace(get("PORT")); p != "" {
			if _, err := strconv.ParseUint(p, 10, 16); err != nil {
				return c, fmt.Errorf("PORT=%q: want a port number", p)
			}
			c.Addr = ":" + p
		}
	}
	if c.LogFormat, err = oneOf(get, "LAMBDAGENT_LOG_FORMAT", "text", "text", "json"); err != nil {
		return c, err
	}
	if c.LogLevel, err = oneOf(get, "LAMBDAGENT_LOG_LEVEL", "info", "debug", "info", "warn", "error"); err != nil {
		return c, err
	}
	if c.Console, err = oneOf(get, "LAMBDAGENT_CONSOLE", "", "true", "false"); err != nil {
		return c, err
	}
	c.ConsoleAddr = strings.TrimSpace(get("LAMBDAGENT_CONSOLE_ADDR"))
	if v := strings.TrimSpace(get("LAMBDAGENT_SIM_LATENCY")); v != "" {
		if c.SimLatency, err = time.ParseDuration(v); err != nil || c.SimLatency < 0 {
			return c, fmt.Errorf("LAMBDAGENT_SIM_LATENCY=%q: want a duration such as 50ms", v)
		}
	}
	return c, nil
}

// defaultConsoleAddr is where the console listens when
// LAMBDAGENT_CONSOLE_ADDR is not set: this machine only.
const defaultConsoleAddr = "127.0.0.1:8081"

// consoleAddr says where mode (dev or serve) serves the console, and
// whether it does: dev unless LAMBDAGENT_CONSOLE=false, serve only when
// LAMBDAGENT_CONSOLE=true or LAMBDAGENT_CONSOLE_ADDR is set.
func (c config) consoleAddr(dev bool) (string, bool) {
	on := c.Console == "true" || c.Console == "" && (dev || c.ConsoleAddr != "")
	if !on {
		return "", false
	}
	if c.ConsoleAddr == "" {
		return defaultConsoleAddr, true
	}
	return c.ConsoleAddr, true
}

func oneOf(get func(string) string, name, def string, allowed ...string) (string, error) {
	v := strings.TrimSpace(get(name))
	if v == "" {
		return def, nil
	}
	for _, a := range allowed {
		if v == a {
			return v, nil
		}
	}
	return "", fmt.Errorf("%s=%q: want one of %s", name, v, strings.Join(allowed, ", "))
}
