import { OutboundUrlPolicy } from './outbound-url-policy';

describe('OutboundUrlPolicy', () => {
  const strict = new OutboundUrlPolicy([], 'start_url', 'START_URL_ALLOW');

  it.each([
    'http://127.0.0.1/',
    'http://localhost:8080/',
    'http://10.1.2.3/',
    'http://172.20.0.1/',
    'http://192.168.1.1/',
    'http://169.254.169.254/latest/meta-data/',
    'http://100.64.0.1/',
    'http://[::1]/',
    'http://[fd00:ec2::254]/',
    'http://[fe80::1]/',
    'http://[::ffff:127.0.0.1]/',
    'http://[::ffff:7f00:1]/',
    'http://0.0.0.0/',
    'http://2130706433/', // 127.0.0.1 as a number: the URL parser normalises it
  ])('refuses %s', async (url) => {
    await expect(strict.check(url)).rejects.toThrow(/loopback, private, link-local, CGNAT or metadata|could not be resolved/);
  });

  it('refuses other schemes and credentials', async () => {
    await expect(strict.check('file:///etc/passwd')).rejects.toThrow(/http or https/);
    await expect(strict.check('javascript:alert(1)')).rejects.toThrow(/http or https/);
    await expect(strict.check('http://user:pw@93.184.215.14/')).rejects.toThrow(/credentials/);
    await expect(strict.check('not a url')).rejects.toThrow(/absolute URL/);
  });

  it('accepts public addresses', async () => {
    await expect(strict.check('https://93.184.215.14/')).resolves.toBeUndefined();
    await expect(strict.check('http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/')).resolves.toBeUndefined();
  });

  it('lets START_URL_ALLOW permit hosts and networks', async () => {
    const allowing = new OutboundUrlPolicy(['127.0.0.1', 'intranet.example', '10.0.0.0/8'], 'webhook url', 'WEBHOOK_URL_ALLOW');
    await expect(allowing.check('http://127.0.0.1:8080/page')).resolves.toBeUndefined();
    await expect(allowing.check('http://10.9.8.7/')).resolves.toBeUndefined();
    await expect(allowing.check('http://intranet.example/')).resolves.toBeUndefined();
    await expect(allowing.check('http://127.0.0.2/')).rejects.toThrow(/webhook url host 127.0.0.2 resolves to 127.0.0.2.*WEBHOOK_URL_ALLOW/);
    await expect(allowing.check('http://169.254.169.254/')).rejects.toThrow(/metadata/);
  });

  it('allows every subdomain of a *.domain entry, and not the domain itself or look-alikes', async () => {
    const wildcard = new OutboundUrlPolicy(['*.corp.example'], 'start_url', 'START_URL_ALLOW');
    await expect(wildcard.check('http://wiki.corp.example/')).resolves.toBeUndefined();
    await expect(wildcard.check('https://a.b.corp.example:8443/x')).resolves.toBeUndefined();
    // Neither the apex nor a name that merely ends the same way: both are resolved (and fail here, offline).
    await expect(wildcard.check('http://corp.example/')).rejects.toThrow(/start_url host corp.example/);
    await expect(wildcard.check('http://evilcorp.example/')).rejects.toThrow(/start_url host evilcorp.example/);
  });
});
