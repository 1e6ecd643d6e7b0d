// Package kubetest runs a real Kubernetes control plane for tests, on
// loopback: an etcd member (embedded, the etcd fibercut already depends
// on), kube-apiserver and kube-controller-manager v1.34.4, built from the Go
// module proxy by the tools module in tools/kube. It starts no kubelet:
// pods are created and scheduled nowhere, which is enough to test what the
// API server accepts and what the controllers do with it.
//
// The binaries are built once into $XDG_CACHE_HOME/fibercut/kube/v1.34.4
// (cold, about eight minutes on two cores; seconds after), or taken from
// $FIBERCUT_KUBE_BIN. When they cannot be had the test is skipped, or fails
// when FIBERCUT_REQUIRE_DOCKER=1.
//
// It needs no privilege: only loopback ports and a temporary directory.
// Every process it starts is killed when the test ends, or when the test
// process dies (Pdeathsig).
package kubetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fibercut/fibercut/lab/labtest"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Version is the Kubernetes the harness runs.
const Version = "v1.34.4"

// EnvBin names a directory holding the binaries already built.
const EnvBin = "FIBERCUT_KUBE_BIN"

// ControlPlane is a running control plane.
type ControlPlane struct {
	// Kubeconfig is a kubeconfig file for it, as cluster-admin.
	Kubeconfig string
	Config     *rest.Config
	Client     kubernetes.Interface
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// Binaries returns the directory holding kube-apiserver and
// kube-controller-manager, building them on first use.
func Binaries(t testing.TB) string {
	t.Helper()
	if d := os.Getenv(EnvBin); d != "" {
		return d
	}
	buildOnce.Do(func() { binDir, buildErr = build() })
	if buildErr != nil {
		labtest.SkipOrFail(t, "kubetest: build Kubernetes %s: %v", Version, buildErr)
	}
	return binDir
}

// components are the binaries the control plane runs.
var components = []string{"kube-apiserver", "kube-controller-manager"}

func build() (string, error) {
	tools, err := toolsModule()
	if err != nil {
		return "", err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "fibercut", "kube", Version)
	for _, c := range components {
		if err := goBuild(tools, dir, c); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// goBuild builds one component into dir; the Go build cache makes a
// second build a link at most.
func goBuild(tools, dir, c string) error {
	ld := "-X k8s.io/component-base/version.gitVersion=" + Version +
		" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=34" +
		" -X k8s.io/component-base/version.gitTreeState=clean"
	cmd := exec.Command("go", "build", "-ldflags", ld, "-o", filepath.Join(dir, c), "k8s.io/kubernetes/cmd/"+c)
	cmd.Dir = tools
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s in %s: %v\n%s", c, tools, err, out.Bytes())
	}
	return nil
}

// toolsModule finds tools/kube above the working directory.
func toolsModule() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "tools", "kube")
		if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no tools/kube/go.mod above the working directory")
		}
		dir = parent
	}
}

// Start runs a control plane until the test ends.
func Start(t testing.TB) *ControlPlane {
	t.Helper()
	if testing.Short() {
		labtest.SkipOrFail(t, "kubetest: control plane skipped in -short mode")
	}
	bin := Binaries(t)
	dir := t.TempDir()
	etcdURL := startEtcd(t, dir)

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	saKey, saPub := filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub")
	write(t, saKey, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	write(t, saPub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	tok := make([]byte, 16)
	rand.Read(tok)
	token := hex.EncodeToString(tok)
	tokens := filepath.Join(dir, "tokens.csv")
	write(t, tokens, []byte(token+",admin,admin,system:masters\n"))

	port := freePort(t)
	server := "https://127.0.0.1:" + strconv.Itoa(port)
	kubeconfig := filepath.Join(dir, "kubeconfig")
	write(t, kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kubetest
  cluster: {server: %q, insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: %q}
contexts:
- name: kubetest
  context: {cluster: kubetest, user: admin}
current-context: kubetest
`, server, token)))

	run(t, dir, filepath.Join(bin, "kube-apiserver"),
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port="+strconv.Itoa(port),
		"--cert-dir="+filepath.Join(dir, "certs"),
		"--token-auth-file="+tokens, "--authorization-mode=Node,RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+saPub, "--service-account-signing-key-file="+saKey,
		"--service-cluster-ip-range=10.96.0.0/24", "--allow-privileged=true",
		"--endpoint-reconciler-type=none", "--enable-priority-and-fairness=false", "--profiling=false",
	)
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitReady(t, cs)
	run(t, dir, filepath.Join(bin, "kube-controller-manager"),
		"--kubeconfig="+kubeconfig, "--leader-elect=false", "--secure-port=0",
		"--service-account-private-key-file="+saKey, "--use-service-account-credentials=false",
		"--controllers=*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-service-lb-controller,-route",
	)
	return &ControlPlane{Kubeconfig: kubeconfig, Config: cfg, Client: cs}
}

func write(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startEtcd runs a one-member etcd on loopback and returns its client URL.
func startEtcd(t testing.TB, dir string) string {
	t.Helper()
	cfg := embed.NewConfig()
	cfg.Dir = filepath.Join(dir, "etcd")
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cu := url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(freePort(t))}
	pu := url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(freePort(t))}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	cfg.InitialCluster = cfg.Name + "=" + pu.String()
	cfg.ListenMetricsUrls = nil
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatalf("kubetest: start etcd: %v", err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		t.Fatal("kubetest: etcd did not become ready in 30 s")
	}
	return cu.String()
}

// run starts a control-plane process, logging to DIR/NAME.log, and stops
// it when the test ends; if it exits early, the test fails with its log.
func run(t testing.TB, dir, bin string, args ...string) {
	t.Helper()
	name := filepath.Base(bin)
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("kubetest: start %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(exited)
	}()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("%s log (last 4 KB):\n%s", name, tail(logPath, 4<<10))
		}
	})
	// A process that dies at once (bad flags) says why in its log.
	select {
	case <-exited:
		t.Fatalf("kubetest: %s exited at once: %s\n%s", name, cmd.ProcessState, tail(logPath, 4<<10))
	case <-time.After(500 * time.Millisecond):
	}
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// waitReady waits up to two minutes for the API server's /readyz.
func waitReady(t testing.TB, cs kubernetes.Interface) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var last error
	for {
		body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && string(body) == "ok" {
			return
		}
		last = err
		select {
		case <-ctx.Done():
			t.Fatalf("kubetest: the API server is not ready after 2 minutes: %v", last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
