import { Injectable } from '@nestjs/common';
import { OutboundUrlPolicy } from '../common/outbound-url-policy';
import { BerthConfig } from '../config/berth-config';

/**
 * A browser's start_url, checked at launch against START_URL_ALLOW. The
 * browser's agent applies the same allow-list to every redirect of the start
 * navigation, so a redirect cannot lead around this check.
 */
@Injectable()
export class StartUrlPolicy extends OutboundUrlPolicy {
  constructor(config: BerthConfig) {
    super(config.browser.startUrlAllow, 'start_url', 'START_URL_ALLOW');
  }
}
