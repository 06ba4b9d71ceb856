package browser

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// URLPolicy decides which hosts the start navigation may reach. Berth's API refuses a
// start_url on a blocked host before the session exists; the agent repeats the check for
// every document request of that first navigation, so a redirect cannot lead the browser
// from an allowed host to, say, a cloud metadata endpoint.
//
// It comes from BERTH_URL_POLICY, a JSON object (both lists optional):
//
//	{"allow_hosts": ["intranet.example.com", "*.corp.example"], "allow_cidrs": ["10.20.0.0/16"]}
//
// A URL is allowed when its scheme is http or https and either its host matches allow_hosts
// (exact, or "*.suffix" for any subdomain of suffix), or every address the host resolves to
// is outside the blocked ranges or inside allow_cidrs. Blocked: loopback, private,
// link-local (cloud metadata lives there), CGNAT, unique-local, unspecified, multicast and
// other reserved ranges; "localhost" and "*.localhost" count as loopback because Chromium
// resolves them itself.
type URLPolicy struct {
	AllowHosts []string `json:"allow_hosts"`
	AllowCIDRs []string `json:"allow_cidrs"`

	cidrs []*net.IPNet
}

// Resolver looks up a host's addresses (net.DefaultResolver in production).
type Resolver interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// netResolver is the system resolver; a variable so tests can replace it.
var netResolver Resolver = net.DefaultResolver

var blockedRanges = mustCIDRs(
	"0.0.0.0/8",       // "this network"; 0.0.0.0 reaches local services
	"10.0.0.0/8",      // private
	"100.64.0.0/10",   // carrier-grade NAT
	"127.0.0.0/8",     // loopback
	"169.254.0.0/16",  // link-local, incl. 169.254.169.254 metadata
	"172.16.0.0/12",   // private
	"192.0.0.0/24",    // IETF protocol assignments
	"192.0.2.0/24",    // documentation
	"192.168.0.0/16",  // private
	"198.18.0.0/15",   // benchmarking
	"198.51.100.0/24", // documentation
	"203.0.113.0/24",  // documentation
	"224.0.0.0/4",     // multicast
	"240.0.0.0/4",     // reserved, incl. broadcast
	"::/128",          // unspecified
	"::1/128",         // loopback
	"100::/64",        // discard
	"2001:db8::/32",   // documentation
	"fc00::/7",        // unique-local, incl. fd00:ec2::254 metadata
	"fe80::/10",       // link-local
	"ff00::/8",        // multicast
)

func mustCIDRs(list ...string) []*net.IPNet {
	out := make([]*net.IPNet, 0, len(list))
	for _, s := range list {
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			panic(err)
		}
		out = append(out, n)
	}
	return out
}

// ParseURLPolicy reads BERTH_URL_POLICY; empty means no exceptions.
func ParseURLPolicy(raw string) (*URLPolicy, error) {
	p := &URLPolicy{}
	if strings.TrimSpace(raw) != "" {
		dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
		dec.DisallowUnknownFields() // a misspelt key must not silently drop an exception
		if err := dec.Decode(p); err != nil {
			return nil, fmt.Errorf("BERTH_URL_POLICY: %w", err)
		}
	}
	for i, h := range p.AllowHosts {
		h = normalizeHost(h)
		wild := strings.HasPrefix(h, "*.")
		if h == "" || h == "*." || strings.Contains(strings.TrimPrefix(h, "*."), "*") || (!wild && strings.HasPrefix(h, "*")) {
			return nil, fmt.Errorf("BERTH_URL_POLICY: bad allow_hosts entry %q", p.AllowHosts[i])
		}
		p.AllowHosts[i] = h
	}
	for _, c := range p.AllowCIDRs {
		_, n, err := net.ParseCIDR(strings.TrimSpace(c))
		if err != nil {
			return nil, fmt.Errorf("BERTH_URL_POLICY: bad allow_cidrs entry %q", c)
		}
		p.cidrs = append(p.cidrs, n)
	}
	return p, nil
}

func normalizeHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
}

// Check returns nil if the policy lets the browser load rawURL, else the reason.
func (p *URLPolicy) Check(ctx context.Context, r Resolver, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("unparsable URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("scheme %q not allowed (http and https only)", u.Scheme)
	}
	host := normalizeHost(u.Hostname())
	if host == "" {
		return fmt.Errorf("URL has no host")
	}
	if p.hostAllowed(host) {
		return nil
	}
	var ips []net.IP
	switch {
	case host == "localhost" || strings.HasSuffix(host, ".localhost"):
		ips = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	case net.ParseIP(host) != nil:
		ips = []net.IP{net.ParseIP(host)}
	default:
		addrs, err := r.LookupIPAddr(ctx, host)
		if err != nil || len(addrs) == 0 {
			return fmt.Errorf("host %s does not resolve", host)
		}
		for _, a := range addrs {
			ips = append(ips, a.IP)
		}
	}
	for _, ip := range ips {
		if blockedIP(ip) && !p.cidrAllowed(ip) {
			return fmt.Errorf("host %s resolves to blocked address %s", host, ip)
		}
	}
	return nil
}

func (p *URLPolicy) hostAllowed(host string) bool {
	for _, h := range p.AllowHosts {
		if h == host || (strings.HasPrefix(h, "*.") && strings.HasSuffix(host, h[1:])) {
			return true
		}
	}
	return false
}

func (p *URLPolicy) cidrAllowed(ip net.IP) bool {
	ip = canonicalIP(ip)
	for _, n := range p.cidrs {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// blockedIP reports whether ip is in a range a start URL must not reach by default.
func blockedIP(ip net.IP) bool {
	ip = canonicalIP(ip)
	for _, n := range blockedRanges {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// canonicalIP unwraps IPv4 addresses carried in IPv6 forms that reach the IPv4 host:
// IPv4-mapped (::ffff:a.b.c.d), NAT64 (64:ff9b::a.b.c.d) and IPv4-compatible (::a.b.c.d).
func canonicalIP(ip net.IP) net.IP {
	if v4 := ip.To4(); v4 != nil {
		return v4
	}
	if len(ip) == net.IPv6len {
		nat64 := net.IP{0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0}
		compat := make(net.IP, 12)
		if bytes.Equal(ip[:12], nat64) || (bytes.Equal(ip[:12], compat) && !ip.Equal(net.IPv6unspecified) && !ip.Equal(net.IPv6loopback)) {
			return net.IPv4(ip[12], ip[13], ip[14], ip[15]).To4()
		}
	}
	return ip
}
