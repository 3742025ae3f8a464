package bwrapd

// The client's wire types against the server's OpenRPC document: a field, status,
// state or signal the server gains without the client fails here. (The client may
// know fields a server of another version lacks: it sends them only when set.)

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// schema is the part of a JSON schema these tests read.
type schema struct {
	Ref        string             `json:"$ref"`
	Properties map[string]*schema `json:"properties"`
	Enum       []string           `json:"enum"`
}

type openRPC struct {
	Methods []struct {
		Name   string `json:"name"`
		Result *struct {
			Schema *schema `json:"schema"`
		} `json:"result"`
	} `json:"methods"`
	Notifications []struct {
		Name   string `json:"name"`
		Params []struct {
			Name string `json:"name"`
		} `json:"params"`
	} `json:"x-notifications"`
	Components struct {
		Schemas map[string]*schema `json:"schemas"`
	} `json:"components"`
}

func loadOpenRPC(t *testing.T) *openRPC {
	t.Helper()
	// The document the server serves from rpc.discover, in this checkout.
	b, err := os.ReadFile(filepath.Join("..", "..", "src", "main", "resources", "openrpc.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc openRPC
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return &doc
}

func (d *openRPC) schema(t *testing.T, name string) *schema {
	t.Helper()
	s := d.Components.Schemas[name]
	if s == nil {
		t.Fatalf("no schema %s in openrpc.json", name)
	}
	return s
}

func (d *openRPC) result(t *testing.T, method string) *schema {
	t.Helper()
	for _, m := range d.Methods {
		if m.Name == method && m.Result != nil {
			if ref := m.Result.Schema.Ref; ref != "" {
				return d.schema(t, strings.TrimPrefix(ref, "#/components/schemas/"))
			}
			return m.Result.Schema
		}
	}
	t.Fatalf("no result of %s in openrpc.json", method)
	return nil
}

// wireNames are the names v's struct fields have on the wire: the wire tag, else the
// json tag.
func wireNames(v any) []string {
	var names []string
	typ := reflect.TypeOf(v)
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		name := f.Tag.Get("wire")
		if name == "" {
			name = strings.Split(f.Tag.Get("json"), ",")[0]
		}
		if name != "" && name != "-" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

func keys[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

func sameNames(t *testing.T, what string, client, server []string) {
	t.Helper()
	sort.Strings(client)
	sort.Strings(server)
	if !reflect.DeepEqual(client, server) {
		t.Errorf("%s: the client has %v, the server's OpenRPC document %v", what, client, server)
	}
}

// covers fails the test for each field of the server the client does not have.
func covers(t *testing.T, what string, client, server []string) {
	t.Helper()
	has := map[string]bool{}
	for _, name := range client {
		has[name] = true
	}
	for _, name := range server {
		if !has[name] {
			t.Errorf("%s: the server's field %q is missing from the client (which has %v)", what, name, client)
		}
	}
}

func TestWireTypesHaveEveryFieldOfTheOpenRPCDocument(t *testing.T) {
	doc := loadOpenRPC(t)
	initialize := doc.result(t, "initialize")
	for _, c := range []struct {
		what   string
		client any
		server *schema
	}{
		{"RunResult", Result{}, doc.schema(t, "RunResult")},
		{"Usage", Usage{}, doc.schema(t, "Usage")},
		{"Captured", captured{}, doc.schema(t, "Captured")},
		{"Cleanup", Cleanup{}, doc.schema(t, "Cleanup")},
		{"CleanupFailure", CleanupFailure{}, doc.schema(t, "CleanupFailure")},
		{"Delivered", delivered{}, doc.schema(t, "Delivered")},
		{"SandboxInfo", SandboxInfo{}, doc.schema(t, "SandboxInfo")},
		{"InitializeResult", ServerInfo{}, initialize},
		{"InitializeResult.bwrap", BwrapInfo{}, initialize.Properties["bwrap"]},
		{"Capabilities", Capabilities{}, doc.schema(t, "Capabilities")},
		{"Capabilities.cgroup", CgroupInfo{}, doc.schema(t, "Capabilities").Properties["cgroup"]},
		{"ResourceLimits", ResourceLimits{}, doc.schema(t, "ResourceLimits")},
		{"Limits", Limits{}, doc.schema(t, "Limits")},
		{"sandbox/argv result", ArgvResult{}, doc.result(t, "sandbox/argv")},
		{"sandbox/input result", inputResult{}, doc.result(t, "sandbox/input")},
		{"RunParams", RunRequest{}, doc.schema(t, "RunParams")},
		{"Mount", Mount{}, doc.schema(t, "Mount")},
	} {
		covers(t, c.what, wireNames(c.client), keys(c.server.Properties))
	}
	for _, n := range doc.Notifications {
		var params []string
		for _, p := range n.Params {
			params = append(params, p.Name)
		}
		switch n.Name {
		case "sandbox/started":
			covers(t, n.Name, wireNames(startedParams{}), params)
		case "sandbox/output":
			covers(t, n.Name, wireNames(outputParams{}), params)
		default:
			t.Errorf("notification %s is unknown to the client", n.Name)
		}
	}
}

func TestEnumsMatchTheOpenRPCDocument(t *testing.T) {
	doc := loadOpenRPC(t)
	statuses := []string{string(StatusExited), string(StatusSignaled), string(StatusTimedOut),
		string(StatusCancelled), string(StatusSetupFailed)}
	sameNames(t, "RunStatus", statuses, doc.schema(t, "RunStatus").Enum)
	// null (no limit exceeded) reads as "", as LimitExceeded has it.
	limits := []string{LimitMemory, LimitPids, LimitCPU, LimitFileSize, LimitOpenFiles, ""}
	sameNames(t, "RunResult.limitExceeded", limits, doc.schema(t, "RunResult").Properties["limitExceeded"].Enum)
	states := []string{string(StateStarting), string(StateRunning), string(StateSuspended)}
	sameNames(t, "SandboxInfo.state", states, doc.schema(t, "SandboxInfo").Properties["state"].Enum)
	var signals []string
	for sig, name := range sendable {
		signals = append(signals, name)
		if signalNumber(name) != sig {
			t.Errorf("%s is %d, not %d", name, signalNumber(name), sig)
		}
	}
	sameNames(t, "SignalName", signals, doc.schema(t, "SignalName").Enum)
}

// The client's version is the project's (pom.xml), as clientVersion in initialize.
func TestVersionIsTheProjectVersion(t *testing.T) {
	pom, err := os.ReadFile(filepath.Join("..", "..", "pom.xml"))
	if err != nil {
		t.Fatal(err)
	}
	project := regexp.MustCompile(`<artifactId>bwrapd</artifactId>\s*<version>([^<]+)</version>`).FindSubmatch(pom)
	if project == nil || string(project[1]) != Version {
		t.Fatalf("Version %q, pom.xml %q", Version, project)
	}
}
