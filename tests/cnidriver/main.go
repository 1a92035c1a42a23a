// cnidriver is a small CNI runtime on Debian's libcni (1.1.2), used by the
// end-to-end scripts to drive a conflist the way containerd and CRI-O do.
//
// libcni 1.1.2 implements spec 1.0.0: it has AddNetworkList, CheckNetworkList,
// DelNetworkList and GetVersionInfo, but no GC or STATUS. Those two verbs are
// implemented here by hand, following libcni 1.2's GCNetworkList and
// GetStatusNetworkList, so the plugin under test sees what a newer runtime
// would send.
//
// Build (GOPATH mode, no network):
//
//	GO111MODULE=off GOPATH=<tmp>:/usr/share/gocode go build -o cnidriver .
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

const usage = `usage: cnidriver <add|check|del|status|gc|version> [flags]

  --conflist FILE           network configuration list (required)
  --bin-dir DIR[:DIR]       plugin search path (required)
  --cache-dir DIR           libcni result cache (required; never the host's /var/lib/cni)
  --netns PATH              container network namespace (add, check; optional for del)
  --ifname NAME             interface name in the container (default eth0)
  --container-id ID         container ID (add, check, del)
  --cni-args K=V;K=V        CNI_ARGS
  --cap-args JSON           capability arguments, e.g. {"portMappings":[...]}
  --valid-attachments JSON  gc: [{"containerID":"..","ifname":".."}] or null; absent = no key sent
  --plugin TYPE             version: ask only this plugin (default: every plugin of the conflist)
  --trace FILE              append one JSON line per plugin execution (stdin, stdout, error,
                            wall ms, CPU ms, peak RSS)
  --timeout DURATION        bound on the whole operation (default 2m)

add prints the chain's result JSON on stdout; version prints {"<type>":{"supportedVersions":[..]}}.
Errors go to stderr, with the CNI error code when the plugin returned one; exit status 1.
`

type options struct {
	verb             string
	conflist         string
	binDirs          []string
	cacheDir         string
	netns            string
	ifname           string
	containerID      string
	cniArgs          [][2]string
	capArgs          map[string]interface{}
	validAttachments json.RawMessage
	plugin           string
	trace            string
	timeout          time.Duration
}

func main() {
	opts, err := parseArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "cnidriver: %v\n\n%s", err, usage)
		os.Exit(2)
	}
	if err := run(opts, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "cnidriver: %s failed: %v\n", opts.verb, err)
		var cniErr *types.Error
		if errors.As(err, &cniErr) {
			hint := ""
			if cniErr.Code == 0 && strings.HasPrefix(cniErr.Msg, "netplugin failed") {
				// libcni's own wrapper: the plugin printed no error JSON
				hint = " (the plugin printed no CNI error JSON)"
			}
			fmt.Fprintf(os.Stderr, "cnidriver: CNI error code %d%s\n", cniErr.Code, hint)
		}
		os.Exit(1)
	}
}

func parseArgs(args []string) (*options, error) {
	if len(args) == 0 {
		return nil, errors.New("missing verb")
	}
	opts := &options{verb: args[0]}
	switch opts.verb {
	case "add", "check", "del", "status", "gc", "version":
	case "-h", "--help", "help":
		fmt.Print(usage)
		os.Exit(0)
	default:
		return nil, fmt.Errorf("unknown verb %q", opts.verb)
	}

	fs := flag.NewFlagSet(opts.verb, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var binDir, cniArgs, capArgs, validAttachments string
	fs.StringVar(&opts.conflist, "conflist", "", "")
	fs.StringVar(&binDir, "bin-dir", "", "")
	fs.StringVar(&opts.cacheDir, "cache-dir", "", "")
	fs.StringVar(&opts.netns, "netns", "", "")
	fs.StringVar(&opts.ifname, "ifname", "eth0", "")
	fs.StringVar(&opts.containerID, "container-id", "", "")
	fs.StringVar(&cniArgs, "cni-args", "", "")
	fs.StringVar(&capArgs, "cap-args", "", "")
	fs.StringVar(&validAttachments, "valid-attachments", "", "")
	fs.StringVar(&opts.plugin, "plugin", "", "")
	fs.StringVar(&opts.trace, "trace", "", "")
	fs.DurationVar(&opts.timeout, "timeout", 2*time.Minute, "")
	if err := fs.Parse(args[1:]); err != nil {
		return nil, err
	}
	if fs.NArg() != 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	if binDir == "" {
		return nil, errors.New("--bin-dir is required")
	}
	opts.binDirs = filepath.SplitList(binDir)
	if opts.conflist == "" && !(opts.verb == "version" && opts.plugin != "") {
		return nil, errors.New("--conflist is required")
	}
	if opts.verb != "version" && opts.cacheDir == "" {
		// libcni would silently fall back to /var/lib/cni, the host's real cache.
		return nil, errors.New("--cache-dir is required")
	}
	switch opts.verb {
	case "add", "check":
		if opts.netns == "" || opts.containerID == "" {
			return nil, fmt.Errorf("%s needs --netns and --container-id", opts.verb)
		}
	case "del":
		if opts.containerID == "" {
			return nil, errors.New("del needs --container-id")
		}
	}

	for _, pair := range strings.Split(cniArgs, ";") {
		if pair == "" {
			continue
		}
		kv := strings.SplitN(pair, "=", 2)
		if len(kv) != 2 || kv[0] == "" {
			return nil, fmt.Errorf("--cni-args: %q is not KEY=VALUE", pair)
		}
		opts.cniArgs = append(opts.cniArgs, [2]string{kv[0], kv[1]})
	}
	if capArgs != "" {
		if err := json.Unmarshal([]byte(capArgs), &opts.capArgs); err != nil {
			return nil, fmt.Errorf("--cap-args is not a JSON object: %w", err)
		}
	}
	if validAttachments != "" {
		var probe []map[string]string
		if err := json.Unmarshal([]byte(validAttachments), &probe); err != nil {
			return nil, fmt.Errorf("--valid-attachments is not a JSON array of {containerID, ifname} (or null): %w", err)
		}
		opts.validAttachments = json.RawMessage(validAttachments)
	}
	return opts, nil
}

func run(opts *options, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), opts.timeout)
	defer cancel()

	runner := &tracingExec{}
	if opts.trace != "" {
		f, err := os.OpenFile(opts.trace, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("open trace file: %w", err)
		}
		defer f.Close()
		runner.trace = f
	}
	cni := libcni.NewCNIConfigWithCacheDir(opts.binDirs, opts.cacheDir, runner)

	if opts.verb == "version" && opts.plugin != "" {
		return printVersions(ctx, cni, []string{opts.plugin}, stdout)
	}

	list, err := libcni.ConfListFromFile(opts.conflist)
	if err != nil {
		return err
	}
	rt := &libcni.RuntimeConf{
		ContainerID:    opts.containerID,
		NetNS:          opts.netns,
		IfName:         opts.ifname,
		Args:           opts.cniArgs,
		CapabilityArgs: opts.capArgs,
	}

	switch opts.verb {
	case "add":
		result, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			return err
		}
		out, err := json.Marshal(result)
		if err != nil {
			return fmt.Errorf("encode result: %w", err)
		}
		_, err = fmt.Fprintf(stdout, "%s\n", out)
		return err
	case "check":
		return cni.CheckNetworkList(ctx, list, rt)
	case "del":
		return cni.DelNetworkList(ctx, list, rt)
	case "status":
		return statusNetworkList(ctx, cni, runner, list)
	case "gc":
		return gcNetworkList(ctx, cni, runner, list, opts)
	case "version":
		var typesInList []string
		for _, p := range list.Plugins {
			typesInList = append(typesInList, p.Network.Type)
		}
		return printVersions(ctx, cni, typesInList, stdout)
	}
	return fmt.Errorf("unknown verb %q", opts.verb)
}

func printVersions(ctx context.Context, cni *libcni.CNIConfig, pluginTypes []string, stdout io.Writer) error {
	type info struct {
		SupportedVersions []string `json:"supportedVersions"`
	}
	all := map[string]info{}
	for _, t := range pluginTypes {
		vi, err := cni.GetVersionInfo(ctx, t)
		if err != nil {
			return fmt.Errorf("plugin type=%q failed (version): %w", t, err)
		}
		all[t] = info{SupportedVersions: vi.SupportedVersions()}
	}
	out, err := json.Marshal(all)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", out)
	return err
}

// atLeast110 reports whether a conflist version has STATUS and GC; as in
// libcni 1.2, an unparsable version counts as "no".
func atLeast110(cniVersion string) bool {
	ge, err := version.GreaterThanOrEqualTo(cniVersion, "1.1.0")
	return err == nil && ge
}

// pluginConf merges keys into one plugin's configuration. Unlike libcni's
// InjectConf it accepts a JSON null, which GC must be able to send for
// cni.dev/valid-attachments.
func pluginConf(plugin *libcni.NetworkConfig, inject map[string]interface{}) ([]byte, error) {
	conf := map[string]interface{}{}
	if err := json.Unmarshal(plugin.Bytes, &conf); err != nil {
		return nil, fmt.Errorf("decode plugin configuration: %w", err)
	}
	for k, v := range inject {
		conf[k] = v
	}
	return json.Marshal(conf)
}

func runtimeFreeArgs(verb string, binDirs []string) *invoke.Args {
	// GC and STATUS are network-wide: libcni 1.2 leaves container, netns and
	// interface empty.
	return &invoke.Args{Command: verb, Path: strings.Join(binDirs, string(os.PathListSeparator))}
}

// statusNetworkList follows libcni 1.2 GetStatusNetworkList: nothing happens
// below 1.1.0; otherwise STATUS goes to each plugin in order and the first
// error is returned unchanged (its CNI code preserved).
func statusNetworkList(ctx context.Context, cni *libcni.CNIConfig, runner invoke.Exec, list *libcni.NetworkConfigList) error {
	if !atLeast110(list.CNIVersion) {
		fmt.Fprintf(os.Stderr, "cnidriver: status: conflist cniVersion %q < 1.1.0, no plugin called (as libcni 1.2)\n", list.CNIVersion)
		return nil
	}
	inject := map[string]interface{}{"name": list.Name, "cniVersion": list.CNIVersion}
	for _, p := range list.Plugins {
		path, err := runner.FindInPath(p.Network.Type, cni.Path)
		if err != nil {
			return err
		}
		conf, err := pluginConf(p, inject)
		if err != nil {
			return fmt.Errorf("failed to generate configuration to get plugin STATUS %s: %w", p.Network.Type, err)
		}
		if err := invoke.ExecPluginWithoutResult(ctx, path, conf, runtimeFreeArgs("STATUS", cni.Path), runner); err != nil {
			return err
		}
	}
	return nil
}

// cacheEntry is the part of libcni's cniCacheV1 file that GC needs.
type cacheEntry struct {
	Kind           string                 `json:"kind"`
	ContainerID    string                 `json:"containerId"`
	IfName         string                 `json:"ifName"`
	NetworkName    string                 `json:"networkName"`
	NetNS          string                 `json:"netns"`
	CniArgs        [][2]string            `json:"cniArgs"`
	CapabilityArgs map[string]interface{} `json:"capabilityArgs"`
	Result         map[string]interface{} `json:"result"`
}

type attachment struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifname"`
}

// gcNetworkList follows libcni 1.2 GCNetworkList: every cached attachment of
// this network that is not valid gets a full DEL, then (from 1.1.0) every
// plugin gets GC with cni.dev/valid-attachments and the older
// cni.dev/attachments. Errors are collected; work continues past them.
func gcNetworkList(ctx context.Context, cni *libcni.CNIConfig, runner invoke.Exec, list *libcni.NetworkConfigList, opts *options) error {
	var valid []attachment
	haveArgs := opts.validAttachments != nil
	if haveArgs {
		if err := json.Unmarshal(opts.validAttachments, &valid); err != nil {
			return fmt.Errorf("--valid-attachments: %w", err)
		}
	}
	isValid := map[attachment]bool{}
	for _, a := range valid {
		isValid[a] = true
	}

	var errs []string
	cached, err := cachedAttachments(opts.cacheDir, list.Name)
	if err != nil {
		return err
	}
	for _, c := range cached {
		if isValid[attachment{ContainerID: c.ContainerID, IfName: c.IfName}] {
			continue
		}
		rt := &libcni.RuntimeConf{
			ContainerID:    c.ContainerID,
			NetNS:          c.NetNS,
			IfName:         c.IfName,
			Args:           c.CniArgs,
			CapabilityArgs: c.CapabilityArgs,
		}
		del := cni.DelNetworkList
		if atLeast110(list.CNIVersion) {
			// libcni 1.1.2 cannot convert a cached result to 1.1.0
			del = func(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
				return delNetworkList110(ctx, cni, runner, list, rt, opts.cacheDir, c.Result)
			}
		}
		if err := del(ctx, list, rt); err != nil {
			errs = append(errs, fmt.Sprintf("failed to delete stale attachment %s %s: %v", c.ContainerID, c.IfName, err))
		}
	}

	if !atLeast110(list.CNIVersion) {
		fmt.Fprintf(os.Stderr, "cnidriver: gc: conflist cniVersion %q < 1.1.0, only stale attachments deleted (as libcni 1.2)\n", list.CNIVersion)
	} else {
		inject := map[string]interface{}{"name": list.Name, "cniVersion": list.CNIVersion}
		if haveArgs {
			inject["cni.dev/valid-attachments"] = opts.validAttachments
			inject["cni.dev/attachments"] = opts.validAttachments
		}
		for _, p := range list.Plugins {
			path, err := runner.FindInPath(p.Network.Type, cni.Path)
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			conf, err := pluginConf(p, inject)
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			if err := invoke.ExecPluginWithoutResult(ctx, path, conf, runtimeFreeArgs("GC", cni.Path), runner); err != nil {
				errs = append(errs, fmt.Sprintf("plugin type=%q failed (gc): %v", p.Network.Type, err))
			}
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// delNetworkList110 is libcni 1.2's DelNetworkList for a spec >= 1.1.0 list:
// the cached result becomes prevResult (1.0.0 and 1.1.0 results have the same
// shape, so only cniVersion changes; an older result is dropped, as libcni
// drops one it cannot convert), plugins run in reverse order, the first error
// stops the walk, and success removes the cache entry.
func delNetworkList110(ctx context.Context, cni *libcni.CNIConfig, runner invoke.Exec, list *libcni.NetworkConfigList,
	rt *libcni.RuntimeConf, cacheDir string, cached map[string]interface{}) error {
	var prevResult map[string]interface{}
	if v, _ := cached["cniVersion"].(string); v == "1.0.0" || v == "1.1.0" {
		prevResult = map[string]interface{}{}
		for k, val := range cached {
			prevResult[k] = val
		}
		prevResult["cniVersion"] = list.CNIVersion
	}
	args := &invoke.Args{
		Command:     "DEL",
		ContainerID: rt.ContainerID,
		NetNS:       rt.NetNS,
		PluginArgs:  rt.Args,
		IfName:      rt.IfName,
		Path:        strings.Join(cni.Path, string(os.PathListSeparator)),
	}
	for i := len(list.Plugins) - 1; i >= 0; i-- {
		p := list.Plugins[i]
		inject := map[string]interface{}{"name": list.Name, "cniVersion": list.CNIVersion}
		if prevResult != nil {
			inject["prevResult"] = prevResult
		}
		runtimeConfig := map[string]interface{}{}
		for capability, supported := range p.Network.Capabilities {
			if data, ok := rt.CapabilityArgs[capability]; ok && supported {
				runtimeConfig[capability] = data
			}
		}
		if len(runtimeConfig) > 0 {
			inject["runtimeConfig"] = runtimeConfig
		}
		path, err := runner.FindInPath(p.Network.Type, cni.Path)
		if err != nil {
			return err
		}
		conf, err := pluginConf(p, inject)
		if err != nil {
			return err
		}
		if err := invoke.ExecPluginWithoutResult(ctx, path, conf, args, runner); err != nil {
			return fmt.Errorf("plugin type=%q failed (delete): %w", p.Network.Type, err)
		}
	}
	_ = os.Remove(filepath.Join(cacheDir, "results", fmt.Sprintf("%s-%s-%s", list.Name, rt.ContainerID, rt.IfName)))
	return nil
}

func cachedAttachments(cacheDir, network string) ([]cacheEntry, error) {
	dir := filepath.Join(cacheDir, "results")
	names, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read libcni cache %s: %w", dir, err)
	}
	var found []cacheEntry
	for _, n := range names {
		if !strings.HasPrefix(n.Name(), network+"-") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, n.Name()))
		if err != nil {
			continue
		}
		var e cacheEntry
		if json.Unmarshal(data, &e) != nil || e.Kind != libcni.CNICacheV1 || e.NetworkName != network {
			continue
		}
		found = append(found, e)
	}
	sort.Slice(found, func(i, j int) bool {
		return found[i].ContainerID+found[i].IfName < found[j].ContainerID+found[j].IfName
	})
	return found, nil
}

// tracingExec runs plugins as libcni's default exec does (environment, stdin,
// captured stdout, retries on "text file busy", the same error decoding) and
// records each call, so a test can see what every plugin of the chain got and
// returned (the bridge's own result next to the final one), and what it cost:
// wall time, CPU time and peak RSS from the plugin's rusage.
type tracingExec struct {
	version.PluginDecoder
	mu    sync.Mutex
	trace io.Writer
}

type traceRecord struct {
	Plugin    string          `json:"plugin"`
	Command   string          `json:"command"`
	Env       []string        `json:"env"`
	Stdin     json.RawMessage `json:"stdin"`
	Stdout    json.RawMessage `json:"stdout"`
	Stderr    string          `json:"stderr,omitempty"`
	Error     *types.Error    `json:"error,omitempty"`
	Ms        float64         `json:"ms"`
	UserMs    float64         `json:"userMs"`
	SysMs     float64         `json:"sysMs"`
	MaxRSSKiB int64           `json:"maxRssKiB"`
}

func (e *tracingExec) FindInPath(plugin string, paths []string) (string, error) {
	return invoke.FindInPath(plugin, paths)
}

func (e *tracingExec) ExecPlugin(ctx context.Context, pluginPath string, stdin []byte, environ []string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	var cmd *exec.Cmd
	var runErr error
	start := time.Now()
	for attempt := 0; attempt <= 5; attempt++ {
		stdout.Reset()
		stderr.Reset()
		cmd = exec.CommandContext(ctx, pluginPath)
		cmd.Env = environ
		cmd.Stdin = bytes.NewReader(stdin)
		cmd.Stdout = &stdout
		cmd.Stderr = &stderr
		runErr = cmd.Run()
		// the binary is being replaced right now: libcni waits and retries
		if runErr == nil || !strings.Contains(runErr.Error(), "text file busy") {
			break
		}
		time.Sleep(time.Second)
	}
	elapsed := time.Since(start)
	// Unlike libcni, show the plugin's stderr on failure too: it is where a
	// plugin explains itself.
	_, _ = os.Stderr.Write(stderr.Bytes())

	var err error
	if runErr != nil {
		err = pluginError(runErr, stdout.Bytes(), stderr.Bytes())
	}
	if e.trace != nil {
		e.record(pluginPath, stdin, environ, stdout.Bytes(), stderr.String(), err, elapsed, cmd.ProcessState)
	}
	if err != nil {
		return nil, err
	}
	return stdout.Bytes(), nil
}

// pluginError decodes a failed plugin's output the way libcni does, so error
// codes reach the caller unchanged.
func pluginError(runErr error, stdout, stderr []byte) *types.Error {
	e := &types.Error{}
	switch {
	case len(stdout) == 0 && len(stderr) == 0:
		e.Msg = fmt.Sprintf("netplugin failed with no error message: %v", runErr)
	case len(stdout) == 0:
		e.Msg = fmt.Sprintf("netplugin failed: %q", string(stderr))
	default:
		if perr := json.Unmarshal(stdout, e); perr != nil {
			e.Msg = fmt.Sprintf("netplugin failed but error parsing its diagnostic message %q: %v", string(stdout), perr)
		}
	}
	return e
}

func (e *tracingExec) record(pluginPath string, stdin []byte, environ []string, stdout []byte, stderr string,
	err error, elapsed time.Duration, state *os.ProcessState) {
	rec := traceRecord{
		Plugin: filepath.Base(pluginPath),
		Stdin:  asJSON(stdin),
		Stdout: asJSON(stdout),
		Stderr: stderr,
		Ms:     float64(elapsed.Microseconds()) / 1000,
	}
	if state != nil {
		rec.UserMs = float64(state.UserTime().Microseconds()) / 1000
		rec.SysMs = float64(state.SystemTime().Microseconds()) / 1000
		if ru, ok := state.SysUsage().(*syscall.Rusage); ok {
			rec.MaxRSSKiB = ru.Maxrss
		}
	}
	for _, kv := range environ {
		if strings.HasPrefix(kv, "CNI_") {
			rec.Env = append(rec.Env, kv)
		}
		if strings.HasPrefix(kv, "CNI_COMMAND=") {
			rec.Command = strings.TrimPrefix(kv, "CNI_COMMAND=")
		}
	}
	var cniErr *types.Error
	if errors.As(err, &cniErr) {
		rec.Error = cniErr
	}
	if line, merr := json.Marshal(rec); merr == nil {
		e.mu.Lock()
		_, _ = e.trace.Write(append(line, '\n'))
		e.mu.Unlock()
	}
}

// asJSON keeps valid JSON as is and wraps anything else (empty output, text)
// in a JSON string, so a trace line is always parsable.
func asJSON(b []byte) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	if json.Valid(b) {
		return json.RawMessage(b)
	}
	s, _ := json.Marshal(string(b))
	return json.RawMessage(s)
}
