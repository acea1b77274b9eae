SELECT account_id, holder_name, customer_class, service_address, email, mobile, language,
       protections, opt_out
FROM extract_accounts WHERE cycle_date = :s AND account_id = :a;
