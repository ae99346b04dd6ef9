variable "aws_region" {
  description = "AWS region of this pylon region, e.g. eu-central-1."
  type        = string
}

variable "name" {
  description = "Prefix of every resource name."
  type        = string
  default     = "pylon"
}

variable "pylon_region" {
  description = "PYLON_REGION: the match-id prefix of this deployment (lowercase letters or digits)."
  type        = string
  default     = "eu"
}

variable "pylon_regions" {
  description = "PYLON_REGIONS: every region's public URL, e.g. eu=https://eu.example.com,us=https://us.example.com (empty: none)."
  type        = string
  default     = ""
}

variable "cors_origin" {
  description = "PYLON_CORS_ORIGIN: the browser origins allowed to call the API, comma separated."
  type        = string
}

variable "image" {
  description = "The pylon image built from the repository's Dockerfile, e.g. <account>.dkr.ecr.<region>.amazonaws.com/pylon:0.1.0."
  type        = string
}

variable "vpc_id" {
  description = "The VPC to run in."
  type        = string
}

variable "public_subnet_ids" {
  description = "Subnets of the load balancer (two or more availability zones)."
  type        = list(string)
}

variable "private_subnet_ids" {
  description = "Subnets of the task and the database (two or more availability zones, with a route to the internet or VPC endpoints for ECR, Secrets Manager and CloudWatch Logs)."
  type        = list(string)
}

variable "certificate_arn" {
  description = "ACM certificate of the public host name, for the 443 and 4324 listeners."
  type        = string
}

variable "task_cpu" {
  description = "Fargate task CPU units (1024 = 1 vCPU); PYLON_TICK_THREADS follows it."
  type        = number
  default     = 2048
}

variable "task_memory" {
  description = "Fargate task memory in MiB."
  type        = number
  default     = 4096
}

variable "db_min_acu" {
  description = "Aurora Serverless v2 minimum capacity (ACU)."
  type        = number
  default     = 0.5
}

variable "db_max_acu" {
  description = "Aurora Serverless v2 maximum capacity (ACU)."
  type        = number
  default     = 4
}

variable "db_backup_retention_days" {
  description = "Days of Aurora's automated backups (point-in-time restore)."
  type        = number
  default     = 14
}

variable "backup_expiry_days" {
  description = "Days after which logical backups in the S3 bucket are deleted."
  type        = number
  default     = 90
}
