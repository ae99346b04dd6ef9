output "load_balancer_dns_name" {
  description = "Point the public host name (CNAME or alias) here."
  value       = aws_lb.pylon.dns_name
}

output "database_endpoint" {
  description = "Aurora cluster writer endpoint."
  value       = aws_rds_cluster.pylon.endpoint
}

output "backup_bucket" {
  description = "S3 bucket for `pylon backup` exports."
  value       = aws_s3_bucket.backups.bucket
}

output "admin_token_secret_arn" {
  description = "Secrets Manager secret holding PYLON_ADMIN_TOKEN."
  value       = aws_secretsmanager_secret.admin_token.arn
}
