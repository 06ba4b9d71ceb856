import { Injectable } from '@nestjs/common';
import { OutboundUrlPolicy } from '../common/outbound-url-policy';
import { BerthConfig } from '../config/berth-config';

/** Webhook endpoints, checked when registered and again before every delivery (DNS may change), against WEBHOOK_URL_ALLOW. */
@Injectable()
export class WebhookUrlPolicy extends OutboundUrlPolicy {
  constructor(config: BerthConfig) {
    super(config.tenancy.webhookUrlAllow, 'webhook url', 'WEBHOOK_URL_ALLOW');
  }
}
