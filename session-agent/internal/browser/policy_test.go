package browser

import (
	"context"
	"errors"
	"net"
	"testing"
)

type fakeResolver map[string][]string

func (f fakeResolver) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	ips, ok := f[host]
	if !ok {
		return nil, errors.New("no such host")
	}
	var out []net.IPAddr
	for _, s := range ips {
		out = append(out, net.IPAddr{IP: net.ParseIP(s)})
	}
	return out, nil
}

var dns = fakeResolver{
	"example.com":       {"93.184.216.34"},
	"metadata.internal": {"169.254.169.254"},
	"mixed.example":     {"93.184.216.34", "10.0.0.5"},
	"intranet.corp":     {"10.20.1.2"},
	"v6.example":        {"2606:2800:220:1:248:1893:25c8:1946"},
	"mapped.example":    {"::ffff:127.0.0.1"},
	"nat64.example":     {"64:ff9b::a9fe:a9fe"},
	"ula.example":       {"fd00:ec2::254"},
	"cgnat.example":     {"100.64.1.1"},
}

func TestDefaultPolicyBlocksInternalAddresses(t *testing.T) {
	p, err := ParseURLPolicy("")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, u := range []string{"https://example.com/", "http://example.com:8080/x?y", "https://v6.example/", "http://93.184.216.34/"} {
		if err := p.Check(ctx, dns, u); err != nil {
			t.Errorf("%s should be allowed: %v", u, err)
		}
	}
	for _, u := range []string{
		"http://127.0.0.1:3000/", "http://localhost/", "http://app.localhost:8080/", "http://[::1]/",
		"http://169.254.169.254/latest/meta-data/", "http://metadata.internal/", "http://mixed.example/",
		"http://intranet.corp/", "http://mapped.example/", "http://nat64.example/", "http://ula.example/",
		"http://cgnat.example/", "http://0.0.0.0/", "http://10.1.2.3/", "http://192.168.1.1/", "http://172.20.0.1/",
		"http://[fe80::1]/", "http://unresolvable.example/", "file:///etc/passwd", "javascript:alert(1)",
		"data:text/html,x", "ftp://example.com/", "http:///nohost",
	} {
		if err := p.Check(ctx, dns, u); err == nil {
			t.Errorf("%s must be blocked", u)
		}
	}
}

func TestPolicyExceptions(t *testing.T) {
	p, err := ParseURLPolicy(`{"allow_hosts":["Intranet.Corp.","*.localhost"],"allow_cidrs":["127.0.0.0/8","fd00:ec2::/64"]}`)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, u := range []string{"http://intranet.corp/", "http://a.localhost:8080/", "http://127.0.0.1:9999/", "http://ula.example/", "http://mapped.example/"} {
		if err := p.Check(ctx, dns, u); err != nil {
			t.Errorf("%s should be allowed by the policy: %v", u, err)
		}
	}
	for _, u := range []string{"http://localhost/", "http://metadata.internal/", "http://[::1]/", "http://mixed.example/"} {
		if err := p.Check(ctx, dns, u); err == nil {
			t.Errorf("%s must stay blocked (wildcards do not match the apex; ::1 is not in 127/8)", u)
		}
	}
}

func TestParseURLPolicyRejectsMistakes(t *testing.T) {
	for _, raw := range []string{`{"allow_host":["x"]}`, `{"allow_cidrs":["10.0.0.0"]}`, `{"allow_hosts":["a*b"]}`, `{"allow_hosts":[""]}`, `{"allow_hosts":["*foo"]}`, `[]`, `{`} {
		if _, err := ParseURLPolicy(raw); err == nil {
			t.Errorf("%s must be refused", raw)
		}
	}
}
