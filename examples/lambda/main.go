// Command lambda is a complete AWS Lambda function built on lambdagent
// with two Go tools of its own, like the seed article's: fetch_customer_data
// and send_notification. The tools run in this process (an in-process MCP
// server), so there is nothing else to bundle or start.
//
// Build and deploy it like lambdagent's own bootstrap (see the README,
// "Deploy to AWS Lambda"): scripts/lambda/build.sh ./examples/lambda, then
// the SAM template. Configuration comes from the same environment
// variables (REDIS_URL, ANTHROPIC_API_KEY, …).
package main

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/lambdagent/lambdagent"
)

func main() {
	opts, err := lambdagent.OptionsFromEnv(os.Getenv)
	if err != nil {
		log.Fatal(err)
	}
	// JSON logs, which CloudWatch Logs reads field by field; the tools
	// log through the same logger.
	slog.SetDefault(slog.New(slog.NewJSONHandler(os.Stderr, nil)))
	opts.Logger = slog.Default()
	opts.System = "You are the support agent of Example Corp. Look customers up before answering."
	opts.Servers = map[string]*mcp.Server{"crm": crmServer()}
	log.Fatal(lambdagent.StartLambda(opts))
}

// crmServer is an MCP server with the function's own tools.
func crmServer() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "crm", Version: "1.0.0"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "fetch_customer_data", Description: "Look a customer up by id."}, fetchCustomer)
	mcp.AddTool(s, &mcp.Tool{Name: "send_notification", Description: "Send a customer a notification."}, sendNotification)
	return s
}

type customerQuery struct {
	CustomerID string `json:"customer_id" jsonschema:"the customer's id, such as c-42"`
}

type customer struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Plan string `json:"plan"`
}

// customers stands in for a DynamoDB table.
var customers = map[string]customer{
	"c-42": {ID: "c-42", Name: "Ada Lovelace", Plan: "enterprise"},
	"c-7":  {ID: "c-7", Name: "Alan Turing", Plan: "starter"},
}

func fetchCustomer(ctx context.Context, _ *mcp.CallToolRequest, q customerQuery) (*mcp.CallToolResult, customer, error) {
	// The log line lets tests (and you) see each real call: a retried
	// turn reuses the stored result instead of calling again.
	slog.InfoContext(ctx, "tool call", "tool", "fetch_customer_data", "customer_id", q.CustomerID)
	c, ok := customers[q.CustomerID]
	if !ok {
		// An error becomes an is_error result that Claude reads.
		return nil, customer{}, fmt.Errorf("no customer %q", q.CustomerID)
	}
	return nil, c, nil
}

type notification struct {
	CustomerID string `json:"customer_id"`
	Message    string `json:"message"`
}

type sent struct {
	Sent bool `json:"sent"`
}

func sendNotification(ctx context.Context, _ *mcp.CallToolRequest, n notification) (*mcp.CallToolResult, sent, error) {
	// Stands in for SES or SNS.
	slog.InfoContext(ctx, "tool call", "tool", "send_notification", "customer_id", n.CustomerID)
	return nil, sent{Sent: true}, nil
}
